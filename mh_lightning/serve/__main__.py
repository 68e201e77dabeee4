import sys

from mh_lightning.serve.cli import main

sys.exit(main())
