"""`mh-lightning fit` and `mh-lightning validate`: the LightningCLI of `mh_lightning.training.cli`.

    mh-lightning fit --config configs/tiny_cpu.yaml     # == python -m mh_lightning.fit fit --config ...
"""

from __future__ import annotations

from collections.abc import Sequence

from mh_lightning.training.cli import main as lightning_main


def fit(argv: Sequence[str] | None = None) -> int:
    return lightning_main(["fit", *(argv or [])])


def validate(argv: Sequence[str] | None = None) -> int:
    return lightning_main(["validate", *(argv or [])])
