"""Checkpoints a run can always resume from, and resumes that continue exactly.

- `AtomicCheckpointIO` writes each checkpoint to a hidden temporary file in the same folder,
  flushes it to disk and renames it over the target: a kill at any moment leaves the old
  file or the new one, never a torn one. (Lightning stages the file in the system temp folder
  and moves it: a copy, not a rename, when that folder is on another disk.)
- `StepCheckpoint` writes `step{N}.ckpt` and refreshes `last.ckpt` every N optimizer steps,
  on top of the per-epoch checkpoints.
- `resolve_ckpt_path` turns `--ckpt_path last` into the newest checkpoint that reads
  completely, warning about each broken one it passes over, and checks an explicit path
  before any model is loaded.
- `protect_earlier_run` refuses to start a new run into a checkpoint folder that holds another
  run's checkpoints (resume it with `--ckpt_path last`, or `--overwrite true` deletes them).
- `Resumable` installs the atomic writer, saves the random generators in every checkpoint
  and, when resuming mid-epoch, skips the batches the checkpoint had already trained on, so
  a resumed run sees the same batches and dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from mh_lightning.data.batching import ConversationSampler
from mh_lightning.errors import MHLightningError
from mh_lightning.model.checkpoint import CheckpointError, read_checkpoint

PARTIAL_SUFFIX = ".partial"  # `.last.ckpt.partial`: never matched by `*.ckpt`
LAST = "last"
PASS_THROUGH = ("best", "hpc")  # Lightning's other special values of ckpt_path


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's transaction
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
        with open(partial, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(partial, path)
        if hasattr(os, "O_DIRECTORY"):  # and the rename itself survives a power cut
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


class StepCheckpoint(ModelCheckpoint):
    def __init__(self, every_n_train_steps: int = 100, keep: int = 1, dirpath: str | None = None) -> None:
        """Save `step{N}.ckpt` and refresh `last.ckpt` every few optimizer steps.

        Args:
            every_n_train_steps: optimizer steps between checkpoints; 0 turns them off (the
                per-epoch `checkpoint.*` ones stay).
            keep: how many step checkpoints to keep, the newest (`last.ckpt` comes on top).
            dirpath: folder to write to (default: the folder of `checkpoint.dirpath`).
        """
        if every_n_train_steps < 0 or keep < 1:
            raise ValueError("step_checkpoint.every_n_train_steps must be >= 0 and step_checkpoint.keep "
                             f">= 1, got {every_n_train_steps} and {keep}")
        # Monitoring the step in "max" mode keeps the newest `keep` files (Lightning's recipe).
        super().__init__(
            dirpath=dirpath, filename="step{step}", monitor="step", mode="max",
            save_top_k=keep if every_n_train_steps else 0, save_last=every_n_train_steps > 0,
            every_n_train_steps=every_n_train_steps, auto_insert_metric_name=False,
            enable_version_counter=False,  # one last.ckpt shared with the epoch checkpoints
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning writes last.ckpt once more at the end; needed only when no checkpoint holds
        # the final step yet (training stopped mid-epoch between step checkpoints). Otherwise
        # last.ckpt stays the per-epoch one, written at the last validation.
        saved = [getattr(cb, "_last_global_step_saved", None) for cb in trainer.checkpoint_callbacks]
        if trainer.global_step not in saved:
            super().on_train_end(trainer, pl_module)


# -- which checkpoint to resume from ----------------------------------------------------------
def newest_complete_checkpoint(folders: Iterable[str | Path]) -> Path | None:
    """The most recently written `*.ckpt` in `folders` that reads completely, or None.

    Broken files (truncated, corrupt, empty) are passed over with a warning naming them."""
    found = []
    for folder in {Path(f) for f in folders}:
        for path in folder.glob("*.ckpt") if folder.is_dir() else ():
            try:
                # last.ckpt wins a tie: it is written after the file it copies
                found.append((path.stat().st_mtime_ns, path.name.startswith(LAST), path))
            except OSError:
                continue  # removed while we looked (an old top-k file)
    broken = []
    for _, _, path in sorted(found, reverse=True):
        try:
            read_checkpoint(path)
        except CheckpointError as err:
            broken.append(str(err))
            continue
        if broken:
            rank_zero_warn(f"skipped {len(broken)} unreadable checkpoint(s): {'; '.join(broken)}. "
                           f"Resuming from the previous complete one, {path}")
        return path
    if broken:
        rank_zero_warn(f"no complete checkpoint to resume from: {'; '.join(broken)}")
    return None


def is_checkpoint_file(ckpt_path: str | Path | None) -> bool:
    """True for a local checkpoint file, False for None and Lightning's special values."""
    text = str(ckpt_path) if ckpt_path is not None else ""
    return bool(text) and text not in (LAST, *PASS_THROUGH) and "://" not in text and not text.startswith("registry")


def resolve_ckpt_path(ckpt_path: str | Path | None, trainer: pl.Trainer) -> str | None:
    """What `trainer.fit(ckpt_path=...)` should get: `last` becomes the newest complete
    checkpoint in the checkpoint folders (None, with a warning, when there is none yet); a
    file is read once here, so a broken one fails with its name before any model loads."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) != LAST:  # a file was read when the CLI parsed it; other values are Lightning's
        return str(ckpt_path)
    folders = [cb.dirpath for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
    path = newest_complete_checkpoint(folders)
    if path is None:
        rank_zero_warn(f"--ckpt_path last: no checkpoint in {sorted(set(folders))} yet; training starts "
                       "from the beginning")
        return None
    return str(path)


# -- an earlier run's checkpoints ------------------------------------------------------------
OVERWRITE_HELP = ("fit: delete the checkpoints an earlier run left in the checkpoint folder and start over "
                  "(without it such a folder is refused; --ckpt_path last resumes that run)")


class EarlierRunError(MHLightningError, RuntimeError):
    """A new run would write over another run's checkpoints; the message says how to resume or start over."""


def checkpoint_files(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, complete (`*.ckpt`) and half-written (`.*.ckpt.partial`)."""
    if not folder.is_dir():
        return []
    return sorted([*folder.glob("*.ckpt"), *folder.glob(f".*.ckpt{PARTIAL_SUFFIX}")])


def protect_earlier_run(trainer: pl.Trainer, ckpt_path: str | Path | None, overwrite: bool) -> list[Path]:
    """Before a new run (no `--ckpt_path`) writes checkpoints: refuse when its checkpoint folders
    hold another run's, or with `overwrite` delete them all (so no old "best" file stays beside
    the new ones). A resume (`--ckpt_path ...`) continues that run and goes through. Returns the
    files deleted."""
    if ckpt_path is not None:
        # A resume writes into its own run's folder, so Lightning's "exists and is not empty" is
        # expected there; a new run never meets it (refused, or the folder emptied first).
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        return []
    folders = sorted({Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)})
    found = [path for folder in folders for path in checkpoint_files(folder)]
    if not found:
        return []
    if not overwrite:
        names = ", ".join(p.name for p in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise EarlierRunError(
            f"{found[0].parent} holds the checkpoints of an earlier run ({names}): resume it with "
            "--ckpt_path last, or give --overwrite true to delete them and start over.")
    if trainer.is_global_zero:  # the other DDP ranks see the same files: one process deletes them
        for path in found:
            path.unlink(missing_ok=True)
    return found


# -- exact resume ---------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The generators that training draws from (dropout), in checkpoint-safe types."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device: every rank has the same
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Resumable(pl.Callback):
    """Atomic checkpoint writes, and resumes that see the batches and dropout masks an
    uninterrupted run would have seen."""

    def __init__(self) -> None:
        self._restored_rng: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Only the default writer is replaced: a user's own CheckpointIO plugin stays.
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored_rng = state_dict.get("rng")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Applied here, not at load: the sanity check and loader setup in between must not
        # shift the stream (the data loaders draw from their own generator).
        if self._restored_rng is not None:
            set_rng_state(self._restored_rng)
            self._restored_rng = None
        skip_trained_batches(trainer)
        loader = trainer.train_dataloader
        if trainer.ckpt_path and getattr(loader, "num_workers", 0) > 0 and hasattr(trainer.fit_loop, "_data_fetcher"):
            # Worker loaders read their sampler when the iterator is made, which Lightning did
            # before the checkpoint was restored: make it again, with the resumed epoch and skip.
            if isinstance(loader.sampler, ConversationSampler):
                loader.sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
            iter(trainer.fit_loop._data_fetcher)


def skip_trained_batches(trainer: pl.Trainer) -> int:
    """When resuming mid-epoch, make the train sampler skip the batches of this epoch that the
    checkpoint already trained on; returns how many batches it skips."""
    loop = trainer.fit_loop
    # `processed` counts each finished batch, also when the checkpoint was written in
    # on_train_batch_end, before Lightning marked that batch `completed`.
    done = loop.epoch_loop.batch_progress.current.processed
    if not loop.restarted_mid_epoch or not 0 < done < trainer.num_training_batches:
        return 0
    loader = trainer.train_dataloader
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, ConversationSampler) or not getattr(loader, "batch_size", None):
        rank_zero_warn(f"resuming mid-epoch: the train loader cannot skip the {done} batches already "
                       "trained on in this epoch, so they are seen twice")
        return 0
    sampler.skip = done * loader.batch_size
    # Lightning warns that a plain loader cannot resume mid-epoch; this one just did.
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
    return done
