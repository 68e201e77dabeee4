"""One way to get a model ready to generate: from a checkpoint, an export folder, or a bare base
model. No Lightning here: the model is rebuilt with the builder training uses (`build_lora_model`).

    model, tokenizer, style, metadata = load_model("runs/tiny_cpu/checkpoints/last.ckpt")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from mh_lightning.errors import CheckpointError
from mh_lightning.model.base import DType, Quantization, load_base_model, load_tokenizer
from mh_lightning.model.checkpoint import (
    EXPORT_METADATA,
    STATE_PREFIX,
    check_adapter_keys,
    prompt_style_of,
    read_checkpoint,
    read_export_metadata,
    saved_hyperparameters,
)
from mh_lightning.model.lora import build_lora_model
from mh_lightning.prompts import DEFAULT_STYLE, PromptStyle

__all__ = ["EXPORT_METADATA", "CheckpointError", "LoadedModel", "default_compute_dtype", "default_device",
           "load_base_only", "load_exported", "load_for_inference", "load_model", "read_checkpoint",
           "read_export_metadata"]


class LoadedModel(NamedTuple):
    """A model in eval mode with what generation needs; unpacks like the 4-tuple it replaces."""

    model: torch.nn.Module
    tokenizer: Any
    style: PromptStyle  # the prompt format it was trained with
    metadata: dict[str, Any]  # the hyperparameters it was built from, and `source`


def default_device() -> str:
    """Where every command runs unless told otherwise."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_compute_dtype(device: torch.device | str) -> DType:
    """The compute dtype of a base model run without a checkpoint's settings."""
    return "bfloat16" if torch.device(device).type == "cuda" else "float32"


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu",
               model_name: str | None = None) -> LoadedModel:
    """The model of a Lightning checkpoint file or of a folder written by `mh_lightning.export`
    (adapter or merged model), in eval mode on `device`.

    `model_name` replaces the recorded base model (a local copy of it). `metadata` holds the
    hyperparameters the model was built from (`model_name`, `quantization`, `compute_dtype`,
    `lora_*`, `max_length`, ...) and `source`: "checkpoint", "adapter" or "merged".
    """
    path = Path(checkpoint)
    overrides = {"model_name": model_name} if model_name else {}
    if path.is_dir():
        return load_exported(path, device, **overrides)
    saved = read_checkpoint(path)
    hparams = {**saved_hyperparameters(saved), **overrides}
    model = build_lora_model(hparams, device)
    expected = {STATE_PREFIX + name for name, p in model.named_parameters() if p.requires_grad}
    try:
        check_adapter_keys(saved, expected)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    model.load_state_dict({k.removeprefix(STATE_PREFIX): v for k, v in saved["state_dict"].items()}, strict=False)
    tokenizer = load_tokenizer(hparams["model_name"])
    return LoadedModel(model.eval(), tokenizer, prompt_style_of(saved), {**hparams, "source": "checkpoint"})


def load_for_inference(path: str | Path, device: torch.device | str = "cpu", **overrides: Any) -> LoadedModel:
    """`load_model` under its earlier name (`overrides`: `model_name` only)."""
    unknown = sorted(set(overrides) - {"model_name"})
    if unknown:
        raise TypeError(f"load_for_inference got unexpected overrides {unknown}; only model_name is accepted")
    return load_model(path, device, overrides.get("model_name"))


def load_base_only(model_name: str, quantization: Quantization = "nf4", compute_dtype: DType | None = None,
                   device: torch.device | str = "cpu") -> LoadedModel:
    """The base model alone, no adapter, in the default prompt format (`--base-only`)."""
    dtype = compute_dtype or default_compute_dtype(device)
    model = load_base_model(model_name, quantization, dtype, device)
    metadata = {"model_name": model_name, "quantization": quantization, "compute_dtype": dtype, "source": "base"}
    return LoadedModel(model.eval(), load_tokenizer(model_name), DEFAULT_STYLE, metadata)


def load_exported(folder: Path, device: torch.device | str = "cpu", **overrides: Any) -> LoadedModel:
    """Rebuild an exported folder: the recorded base + its PEFT adapter, or a merged model."""
    from transformers import AutoModelForCausalLM

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
    return LoadedModel(model.eval(), tokenizer, style, {**hparams, "source": source})
