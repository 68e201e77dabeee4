"""TRL's `SFTTrainer` on the same model, data and recipe, timed like scripts/benchmark.py.

The code is `mh_lightning.benchmarking.trl_sft`; `python scripts/trl_baseline.py --help` shows the usage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from mh_lightning.benchmarking.trl_sft import main  # noqa: E402

if __name__ == "__main__":
    main()
