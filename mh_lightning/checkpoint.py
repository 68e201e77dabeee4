"""Read this project's adapter-only checkpoints and rebuild the model they were trained on.

A checkpoint holds the LoRA tensors, the module's hyperparameters (base model id,
quantization, LoRA settings) and the prompt style, so nothing else is needed to rebuild it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mh_lightning.module import CHECKPOINT_KEY, FalconLoRAModule, check_adapter_keys
from mh_lightning.prompts import PromptStyle


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not one of ours; the message names the file."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file on the CPU (tensors and plain values only) and check it is ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, pickle refused, ...
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(f"{path}: not an mh_lightning checkpoint (made by another program?)")
    return checkpoint


def prompt_style_of(checkpoint: dict[str, Any]) -> PromptStyle:
    return PromptStyle.from_dict(checkpoint[CHECKPOINT_KEY].get("prompt_style"))


def load_module(
    path: str | Path, device: torch.device | str = "cpu", **overrides: Any
) -> FalconLoRAModule:
    """Rebuild the base model + adapters of a checkpoint, in eval mode, on `device`.

    `overrides` replace saved hyperparameters (e.g. `model_name` for a local copy of the base).
    """
    checkpoint = read_checkpoint(path)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    module = FalconLoRAModule(**{**hparams, **overrides})
    module.build(device)
    try:
        check_adapter_keys(checkpoint, module.trainable_state_keys())
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    module.style = prompt_style_of(checkpoint)
    return module.eval()
