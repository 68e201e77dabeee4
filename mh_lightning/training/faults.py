"""Failures that say what went wrong and keep what was paid for.

- `NonFiniteLossGuard` stops at the first NaN/inf loss. It checks once per optimizer step
  (one host sync, and one tiny all-reduce under DDP, instead of one per micro-batch), before
  the step changes any weight, saves that last good state as `last.ckpt` and raises an error
  naming the step, the batch and the data rows in it.
- `explain_out_of_memory` turns a CUDA out-of-memory error into the config keys to lower.
- `no_empty_logs` removes the logger folder a run made when it fails before its first step (bad
  data, a wrong setting): TensorBoard creates `version_N` and an events file at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from mh_lightning.data.batching import ConversationSampler
from mh_lightning.errors import NonFiniteLossError, OutOfMemoryHint
from mh_lightning.training.resume import LAST


# -- non-finite loss ------------------------------------------------------------------------
class NonFiniteLossGuard(pl.Callback):
    def __init__(self) -> None:
        self._window: list[tuple[int, torch.Tensor]] = []  # (batch index, loss) since the last step
        self._rewind: int | None = None  # set while saving the last good state: batches to take back

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self._window.append((trainer.fit_loop.epoch_loop.batch_idx, loss.detach()))

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        window, self._window = self._window, []
        if not window:
            return
        finite = torch.stack([torch.isfinite(loss).all() for _, loss in window])
        bad_anywhere = trainer.strategy.reduce((~finite).sum().float(), reduce_op="sum")
        if bad_anywhere.item() == 0:  # the one host sync per optimizer step
            return
        path = self._save_last_good_state(trainer, first_batch=window[0][0])
        raise NonFiniteLossError(non_finite_message(trainer, window, finite.tolist(), path))

    def _save_last_good_state(self, trainer: pl.Trainer, first_batch: int) -> Path:
        """The weights and optimizer are still those of the previous step; the progress is
        taken back to the start of this accumulation window, so a resume replays all of it."""
        callback = trainer.checkpoint_callback
        folder = Path(callback.dirpath) if callback is not None and callback.dirpath else \
            Path(trainer.default_root_dir) / "checkpoints"
        path = folder / f"{LAST}.ckpt"
        self._rewind = trainer.fit_loop.epoch_loop.batch_progress.current.completed - first_batch
        try:
            trainer.save_checkpoint(path)  # on every process: it is a collective under DDP
        finally:
            self._rewind = None
        return path

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._rewind is None:
            return  # an ordinary checkpoint, written between batches
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        for scope in ("total", "current"):
            done = progress[scope]["completed"] - self._rewind
            progress[scope].update(ready=done, started=done, processed=done, completed=done)
        progress["is_last_batch"] = False


def non_finite_message(trainer: pl.Trainer, window: list[tuple[int, torch.Tensor]], finite: list[bool],
                       path: Path) -> str:
    bad = [(batch, loss) for (batch, loss), ok in zip(window, finite, strict=True) if not ok]
    if bad:
        batch, loss = bad[0]
        value = "NaN" if torch.isnan(loss).any() else "infinite"
        rows = batch_rows(trainer, batch)
        where = f"batch {batch} of epoch {trainer.current_epoch}" + (f" ({rows})" if rows else "")
    else:
        value, where = "NaN or infinite", "a batch of another process"
    clip = trainer.gradient_clip_val or "off"
    return (
        f"the training loss became {value} at global step {trainer.global_step}, in {where}. "
        f"Training stopped before this step changed any weight; the last good state is saved in {path} "
        "(resume with --ckpt_path last). Lower model.learning_rate or "
        f"trainer.gradient_clip_val (now {clip}), use trainer.precision bf16-mixed instead of 16-mixed, "
        "or look at those rows of the data."
    )


def batch_rows(trainer: pl.Trainer, batch_idx: int) -> str:
    """`rows 3, 17 of data.jsonl`: the data rows in train batch `batch_idx` of this process
    (empty when the loader does not say)."""
    loader = trainer.train_dataloader
    sampler, size = getattr(loader, "sampler", None), getattr(loader, "batch_size", None)
    datamodule = trainer.datamodule
    conversations = getattr(datamodule, "train_conversations", None)
    if not isinstance(sampler, ConversationSampler) or not size or not conversations:
        return ""
    indices = sampler.epoch_order()[batch_idx * size : (batch_idx + 1) * size]
    rows = ", ".join(str(conversations[i].row) for i in indices)
    return f"rows {rows} of {datamodule.hparams.path}"


# -- out of memory --------------------------------------------------------------------------
def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "CUDA out of memory" in str(err))


def out_of_memory_message(trainer: pl.Trainer, err: BaseException) -> str:
    data = getattr(trainer.datamodule, "hparams", {})
    model = getattr(trainer.lightning_module, "hparams", {})
    batch, length = data.get("batch_size", "?"), data.get("max_length", "?")
    accumulate = trainer.accumulate_grad_batches
    halved = max(1, batch // 2) if isinstance(batch, int) else "?"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"the GPU ran out of memory at global step {trainer.global_step} ({first_line}).\n"
        "Lower the memory one step needs with these config keys:\n"
        f"  data.batch_size: {batch} -> {halved}, with trainer.accumulate_grad_batches: {accumulate} -> "
        f"{accumulate * 2} to keep the same global batch\n"
        f"  data.max_length: {length} -> a smaller value (longer examples are cut)\n"
        f"  model.gradient_checkpointing: true (now {str(model.get('gradient_checkpointing', '?')).lower()}; "
        "recomputes activations: less memory, about 25% slower)\n"
        "  model.optimizer: paged_adamw_8bit (optimizer state in 8 bits, paged to the CPU when needed)"
    )


@contextmanager
def explain_out_of_memory(trainer: pl.Trainer) -> Iterator[None]:
    """Re-raise a CUDA out-of-memory error as `OutOfMemoryHint` naming the keys to lower."""
    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        raise OutOfMemoryHint(out_of_memory_message(trainer, err)) from err


# -- a run that never started ---------------------------------------------------------------
@contextmanager
def no_empty_logs(trainer: pl.Trainer) -> Iterator[None]:
    """When the wrapped fit fails before its first optimizer step, remove the log folders it left
    holding nothing but TensorBoard events files (nothing was trained)."""
    try:
        yield
    except BaseException:
        if trainer.global_step == 0 and trainer.is_global_zero:
            remove_empty_log_folders(trainer)
        raise


def remove_empty_log_folders(trainer: pl.Trainer) -> list[Path]:
    """Remove each logger's `version_N` folder that holds only `events.out.tfevents.*` files (and
    its parent when that leaves it empty); returns the folders removed."""
    removed = []
    for logger in trainer.loggers:
        folder = Path(logger.log_dir) if getattr(logger, "log_dir", None) else None
        if folder is None or not folder.is_dir():
            continue
        entries = list(folder.iterdir())
        if not all(p.is_file() and p.name.startswith("events.out.tfevents.") for p in entries):
            continue  # a config, a checkpoint, a sample: something worth keeping
        shutil.rmtree(folder)
        removed.append(folder)
        if not any(folder.parent.iterdir()):
            folder.parent.rmdir()
    return removed
