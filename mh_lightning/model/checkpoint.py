"""The files this project writes: adapter-only checkpoints and export folders. No Lightning here.

A checkpoint holds the LoRA tensors, the module's hyperparameters (base model id,
quantization, LoRA settings) and the prompt style, so nothing else is needed to rebuild it
(`mh_lightning.inference.loading.load_model` does). An export folder holds the same facts in
its `mh_lightning.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mh_lightning.errors import CheckpointError
from mh_lightning.prompts import PromptStyle

CHECKPOINT_KEY = "mh_lightning"  # marks our checkpoints and records how to rebuild the model
CHECKPOINT_FORMAT = 1
STATE_PREFIX = "model."  # state_dict keys are the LightningModule's: its `model` attribute holds the peft model
EXPORT_METADATA = "mh_lightning.json"  # in every folder mh_lightning.export writes


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file on the CPU (tensors and plain values only) and check it is ours
    and complete; every failure is a `CheckpointError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file; give a .ckpt file such as "
                              f"{path / 'last.ckpt'}")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes), its write was cut short; use an older "
                              "checkpoint (--ckpt_path last picks the newest complete one)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, pickle refused, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt ({type(err).__name__}: "
                              f"{reason}); use an older checkpoint (--ckpt_path last picks the newest complete "
                              "one)") from err
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(f"{path}: not an mh_lightning checkpoint (made by another program?)")
    missing = [key for key in ("state_dict", "hyper_parameters") if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: an incomplete checkpoint, without {missing[0]!r}")
    return checkpoint


def prompt_style_of(checkpoint: dict[str, Any]) -> PromptStyle:
    return PromptStyle.from_dict(checkpoint[CHECKPOINT_KEY].get("prompt_style"))


def read_export_metadata(folder: Path) -> dict[str, Any]:
    file = folder / EXPORT_METADATA
    if not file.is_file():
        example = f" such as {folder / 'last.ckpt'}" if (folder / "last.ckpt").is_file() else ""
        raise CheckpointError(f"{folder}: a folder without {EXPORT_METADATA} was not written by "
                              f"mh_lightning.export; give a .ckpt file{example} or an exported folder")
    try:
        metadata = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{file}: unreadable export metadata ({type(err).__name__}: {err})") from None
    if not isinstance(metadata, dict) or "model_name" not in metadata.get("hyper_parameters", {}):
        raise CheckpointError(f"{file}: export metadata without hyper_parameters.model_name; re-export the folder")
    return metadata


def saved_hyperparameters(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The model settings a checkpoint was trained with (LightningCLI's `_class_path` and the like left out)."""
    return {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}


def saved_data_settings(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The data settings a checkpoint was trained with (they rebuild its split); the tokenizer is
    the model's, so it is left out."""
    saved = checkpoint.get("datamodule_hyper_parameters") or {}
    return {k: v for k, v in saved.items() if not k.startswith("_") and k != "tokenizer_name"}


def check_adapter_keys(checkpoint: dict[str, Any], expected: set[str]) -> None:
    """Refuse a checkpoint whose adapters do not fit this model, naming what differs."""
    if CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError("this is not an mh_lightning checkpoint (no 'mh_lightning' entry)")
    found = set(checkpoint["state_dict"])
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        detail = f"missing {missing[:2]}" if missing else f"unexpected {unexpected[:2]}"
        raise CheckpointError(
            f"the checkpoint's adapters do not match the model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected: {detail}); were model.lora_* settings changed? Use the "
            "model.lora_* settings the checkpoint was trained with, or start without --ckpt_path"
        )
