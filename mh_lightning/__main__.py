"""`python -m mh_lightning SUBCOMMAND ...` is `mh-lightning SUBCOMMAND ...`."""

import sys

from mh_lightning.cli import main

sys.exit(main())
