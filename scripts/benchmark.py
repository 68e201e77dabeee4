"""Training throughput of the project's own loop, as one JSON line.

The code is `mh_lightning.benchmarking.loop`; `python scripts/benchmark.py --help` shows the usage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from mh_lightning.benchmarking.loop import main  # noqa: E402

if __name__ == "__main__":
    main()
