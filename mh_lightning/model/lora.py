"""LoRA adapters on the quantized base, and the one builder of the trained model that training,
generation, evaluation and export share. No Lightning here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from mh_lightning.model.base import load_base_model, torch_dtype

DEFAULT_LORA_TARGETS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")


def add_lora(
    model: PreTrainedModel,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: Sequence[str] = DEFAULT_LORA_TARGETS,
    gradient_checkpointing: bool = False,
    quantized: bool = True,
) -> torch.nn.Module:
    """Prepare a (k-bit) model for training and wrap it with trainable LoRA adapters."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model.config.use_cache = False  # the KV cache is useless in training and wastes memory
    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def build_lora_model(hparams: Mapping[str, Any], device: torch.device | str = "cpu") -> torch.nn.Module:
    """The base model of `hparams` loaded (and quantized) onto `device`, with fresh LoRA adapters.

    `hparams` holds the settings of `FalconLoRAModule` (`model_name`, `quantization`,
    `compute_dtype`, `quant_storage`, `dequantize_once`, `lora_*`, `gradient_checkpointing`): a module's
    hyperparameters, a checkpoint's or an export folder's."""
    h = hparams
    base = load_base_model(h["model_name"], h["quantization"], h["compute_dtype"], device, h["quant_storage"])
    if h.get("dequantize_once", False):  # checkpoints from before this setting do not have it
        from mh_lightning.model.dequantized import dequantize_once

        dequantize_once(base, torch_dtype(h["compute_dtype"]))
    return add_lora(base, h["lora_r"], h["lora_alpha"], h["lora_dropout"], h["lora_target_modules"],
                    h["gradient_checkpointing"], quantized=h["quantization"] != "none")
