"""The recipe's own way of training (HF Trainer), timed like scripts/benchmark.py.

The code is `mh_lightning.benchmarking.hf_trainer`; `python scripts/hf_trainer_baseline.py --help` shows the usage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from mh_lightning.benchmarking.hf_trainer import main  # noqa: E402

if __name__ == "__main__":
    main()
