"""Read this project's adapter-only checkpoints and rebuild the model they were trained on.

A checkpoint holds the LoRA tensors, the module's hyperparameters (base model id,
quantization, LoRA settings) and the prompt style, so nothing else is needed to rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mh_lightning.prompts import PromptStyle
from mh_lightning.training.module import CHECKPOINT_KEY, FalconLoRAModule, check_adapter_keys

EXPORT_METADATA = "mh_lightning.json"  # in every folder mh_lightning.export writes


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not one of ours; the message names the file."""


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


# -- one entry point for generate, chat, evaluation and export ----------------------------
def load_for_inference(
    path: str | Path, device: torch.device | str = "cpu", **overrides: Any
) -> tuple[torch.nn.Module, Any, PromptStyle, dict[str, Any]]:
    """(model in eval mode, tokenizer, prompt style, metadata) from a Lightning checkpoint
    file or a folder written by `mh_lightning.export` (adapter or merged model).

    `metadata` holds the hyperparameters the model was built from (`model_name`,
    `quantization`, `compute_dtype`, `lora_*`, `max_length`, ...) and `source`:
    "checkpoint", "adapter" or "merged".
    """
    from mh_lightning.model.base import load_tokenizer

    path = Path(path)
    if path.is_dir():
        return load_exported(path, device, **overrides)
    module = load_module(path, device, **overrides)
    metadata = {**dict(module.hparams), "source": "checkpoint"}
    return module.model, load_tokenizer(module.hparams.model_name), module.style, metadata


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


def load_exported(
    folder: Path, device: torch.device | str = "cpu", **overrides: Any
) -> tuple[torch.nn.Module, Any, PromptStyle, dict[str, Any]]:
    """Rebuild an exported folder: the recorded base + its PEFT adapter, or a merged model."""
    from transformers import AutoModelForCausalLM

    from mh_lightning.model.base import load_base_model, load_tokenizer

    metadata = read_export_metadata(folder)
    hparams = {**metadata["hyper_parameters"], **overrides}
    style = PromptStyle.from_dict(metadata.get("prompt_style"))
    try:
        tokenizer = load_tokenizer(str(folder))
        if (folder / "adapter_config.json").is_file():
            from peft import PeftModel

            base = load_base_model(hparams["model_name"], hparams.get("quantization", "nf4"),
                                   hparams.get("compute_dtype", "bfloat16"), device, hparams.get("quant_storage"))
            model, source = PeftModel.from_pretrained(base, folder), "adapter"
        elif (folder / "config.json").is_file():
            device_map = {"": str(torch.device(device))}
            model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto", device_map=device_map)
            source = "merged"
        else:
            raise CheckpointError(f"{folder}: neither adapter_config.json nor config.json: incomplete export")
    except (OSError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{folder}: cannot load the exported model: {reason}") from err
    return model.eval(), tokenizer, style, {**hparams, "source": source}
