"""Fine-tune the crisis classifier shipped in mh_lightning/resources/safety_classifier.safetensors.

    python scripts/train_safety_classifier.py            # PYTHONPATH=. if mh_lightning is not pip-installed
    python scripts/train_safety_classifier.py --soup A.safetensors B.safetensors   # a soup of two runs

One seeded run on the CPU: the protocol is mh_lightning.safety.training's (its docstring; how long
it takes: docs/safety.md). The answer head is fitted in the same run.

Portability: MKL and torch's kernels are pinned to their AVX2 code paths and the thread count is
fixed, so a retrain on another x86-64 CPU gives the same numbers up to rounding that the test bounds.
"""

from __future__ import annotations

import os

# Before torch loads: MKL and torch's own kernels take their AVX2 code paths on every x86-64 CPU that has
# AVX2 (Intel or AMD, with or without AVX-512), so a retrain elsewhere repeats these numbers; 4x faster
# than MKL's SSE2-only "COMPATIBLE" mode, which is what MKL falls back to on a CPU without AVX2.
os.environ.setdefault("MKL_CBWR", "AVX2")
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

import argparse  # noqa: E402  (the environment above must be set before torch is imported)
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from mh_lightning.safety.classifier import ARTEFACT  # noqa: E402
from mh_lightning.safety.soup import soup  # noqa: E402
from mh_lightning.safety.training import Settings, save, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ARTEFACT, help="where the artefact goes")
    parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a setting for an experiment (the shipped artefact uses the defaults)")
    parser.add_argument("--soup", type=Path, nargs="+", metavar="ARTEFACT",
                        help="instead of fine-tuning: average these artefacts (made by this script) and fit the "
                             "answer head, temperature and thresholds on the average (docs/safety.md, Training)")
    args = parser.parse_args(argv)
    defaults = Settings()
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in defaults.__dict__:
            parser.error(f"--set {item}: unknown setting; known: {', '.join(defaults.__dict__)}")
        overrides[name] = type(defaults.__dict__[name])(value)
    for path in args.soup or ():
        if not path.is_file():
            parser.error(f"--soup {path}: no such file")
    tensors, meta = soup(args.soup, Settings(**overrides)) if args.soup else train(Settings(**overrides))
    if not args.dry_run:
        save(tensors, meta, args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
