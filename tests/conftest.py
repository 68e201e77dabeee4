"""Shared fixtures: offline switches, the real data (skipped when absent), a trained tiny run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: fail fast instead of retrying hub requests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny_cpu.yaml"
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_PARQUET = SHARED_DATA / "mental_health_chatbot_dataset.parquet"
COUNSEL_CSV = SHARED_DATA / "counsel_chat_20200325.csv"

needs_real_data = pytest.mark.skipif(
    not REAL_PARQUET.is_file() or not COUNSEL_CSV.is_file(),
    reason="the real datasets live in ../shared/data, which users do not have",
)


def fit_args(root: Path, *extra: str) -> list[str]:
    """Arguments of a quiet tiny-config fit into `root`."""
    return [
        "fit", "--config", str(TINY_CONFIG),
        "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short tiny-config training run shared by the tests that need a checkpoint."""
    from mh_lightning.fit import cli_main

    root = tmp_path_factory.mktemp("tiny_run")
    cli_main(fit_args(root, "--trainer.max_epochs", "3"))
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: Path) -> Path:
    path = tiny_run / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return path
