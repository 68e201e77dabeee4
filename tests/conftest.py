"""Shared fixtures: offline switches, the real data (skipped when absent), a trained tiny run, its
loaded model, a scripted model for exact generation tests, and the `gpu` marker's skip."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from mh_lightning.inference import LoadedModel

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


class Scripted:
    """Makes a real model write given tokens: at each step every other logit is -inf, so
    sampling and greedy decoding both follow the script (then `filler` forever).

    Scripts restart at each generation (a forward whose cache position starts at 0), and
    `inputs` records the token ids the model received then, one list per row."""

    def __init__(self, model: torch.nn.Module, scripts: Sequence[Sequence[int]], filler: int) -> None:
        self.model, self.scripts, self.filler, self.step = model, [list(s) for s in scripts], filler, 0
        self.hooks: list = []
        self.inputs: list[list[int]] = []

    def __enter__(self) -> Scripted:
        decoder = self.model.get_base_model().transformer
        self.hooks = [decoder.register_forward_pre_hook(self._restart, with_kwargs=True),
                      self.model.get_output_embeddings().register_forward_hook(self._force)]
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self.hooks:
            hook.remove()

    def _restart(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        position = kwargs.get("cache_position")
        if position is not None and int(position[0]) == 0:
            self.step = 0
            input_ids = args[0] if args else kwargs["input_ids"]
            self.inputs += input_ids.tolist()

    def _force(self, module: torch.nn.Module, inputs: tuple, logits: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(logits, float("-inf"))
        for row in range(logits.shape[0]):
            script = self.scripts[row % len(self.scripts)]
            token = script[self.step] if self.step < len(script) else self.filler
            forced[row, -1, token] = 0.0
        self.step += 1
        return forced


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def scripted(loaded, *texts_or_ids: str | list[int]) -> Scripted:
    """A `Scripted` context for `loaded`'s model; text parts are tokenized, lists kept as ids."""
    model, tokenizer = loaded[0], loaded[1]
    scripts = [ids(tokenizer, s) if isinstance(s, str) else s for s in texts_or_ids]
    return Scripted(model, scripts, filler=ids(tokenizer, " a")[0])


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Iterator[LoadedModel]:
    """The tiny checkpoint's model, tokenizer, style and metadata, single-threaded for the module
    (tiny models: more threads only add overhead)."""
    from mh_lightning.inference import load_model
    from mh_lightning.safety_semantic import one_thread

    with one_thread():
        yield load_model(tiny_checkpoint)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need the trained tiny run (a minute of training, once) are `slow`; `gpu` tests
    run where CUDA is, and are skipped cleanly elsewhere."""
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)
