"""The CPU comparison of docs/benchmarks.md in one run: the project, the HF recipe and TRL, interleaved.

The code is `mh_lightning.benchmarking.rounds`; `python scripts/bench_rounds.py --help` shows the usage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from mh_lightning.benchmarking.rounds import main  # noqa: E402

if __name__ == "__main__":
    main()
