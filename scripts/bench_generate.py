"""Generation speed at batch 1 after training: 4-bit base + adapter, and the merged model.

The code is `mh_lightning.benchmarking.generation`; `python scripts/bench_generate.py --help` shows the usage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from mh_lightning.benchmarking.generation import main  # noqa: E402

if __name__ == "__main__":
    main()
