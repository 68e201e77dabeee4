"""A thin LightningModule around a quantized causal LM with LoRA adapters.

Lightning owns the loop (precision, accumulation, clipping, checkpointing, logging); this
module builds the model, runs one shared step for train and val, sets up the optimizer
and schedule from the config, and keeps checkpoints adapter-only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from mh_lightning import __version__
from mh_lightning.data.tokenization import IGNORE_INDEX
from mh_lightning.errors import SettingsError
from mh_lightning.model.base import DType, Quantization
from mh_lightning.model.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_KEY, check_adapter_keys
from mh_lightning.model.lora import DEFAULT_LORA_TARGETS, build_lora_model
from mh_lightning.prompts import DEFAULT_STYLE
from mh_lightning.training.losses import causal_lm_loss

WRAPPER_SEGMENTS = r"(_fsdp_wrapped_module|_checkpoint_wrapped_module)\."  # torch's FSDP / checkpoint_wrapper
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"]
Schedule = Literal["cosine", "linear", "constant"]
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "labels")


class FalconLoRAModule(pl.LightningModule):
    def __init__(
        self,
        model_name: str = "builtin:tiny-falcon",
        quantization: Quantization = "nf4",
        compute_dtype: DType = "bfloat16",
        quant_storage: DType | None = None,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        lora_target_modules: Sequence[str] = DEFAULT_LORA_TARGETS,
        gradient_checkpointing: bool = False,
        dequantize_once: bool = False,
        optimizer: Optimizer = "adamw",
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        lr_schedule: Schedule = "cosine",
        warmup_ratio: float = 0.03,
        max_length: int = 512,
    ) -> None:
        """QLoRA fine-tuning of a causal LM.

        Args:
            model_name: hub id or local folder of the base model, or `builtin:tiny-falcon`.
            quantization: how the base weights are stored: nf4, fp4 (4-bit), int8, or none.
            compute_dtype: dtype of the 4-bit matmuls and the non-quantized weights.
            quant_storage: storage dtype of 4-bit weights; set it to `compute_dtype` for FSDP.
            lora_r: LoRA rank.
            lora_alpha: LoRA scaling numerator (scale = alpha / r).
            lora_dropout: dropout on the LoRA input.
            lora_target_modules: names of the linear layers that get adapters.
            gradient_checkpointing: recompute activations in backward (Falcon-7B, micro-batch 8
                on an H200: peak 10 GB instead of 48 GB, for about 1.6x the time).
            dequantize_once: keep the 4-bit base weights dequantized in the compute dtype, made once
                at load, instead of dequantizing them in every forward and backward: the same numbers,
                faster, for the memory of the base in the compute dtype (mh_lightning.model.dequantized).
            optimizer: torch AdamW, or a bitsandbytes 8-bit/paged variant (GPU only).
            learning_rate: peak learning rate.
            weight_decay: AdamW weight decay.
            lr_schedule: decay after warmup: cosine, linear or constant.
            warmup_ratio: share of the optimizer steps spent warming up linearly.
            max_length: context length trained on (linked to `data.max_length` by the CLI).
        """
        super().__init__()
        self.save_hyperparameters()
        check_settings(self.hparams)  # before `configure_model` loads anything
        self.model: torch.nn.Module | None = None
        self.style = DEFAULT_STYLE
        # Checkpoints hold only the adapters: the frozen base weights come from `model_name`.
        self.strict_loading = False
        self.val_nll = MeanMetric()

    # -- model -----------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is None:
            self.build(self.trainer.strategy.root_device)
            self.model.train()  # from_pretrained returns eval mode, which would disable LoRA dropout

    def build(self, device: torch.device | str = "cpu") -> None:
        """Load the quantized base straight onto `device` and add fresh LoRA adapters."""
        self.model = build_lora_model(self.hparams, device)  # the attribute name is the checkpoint's STATE_PREFIX

    def trainable_state_keys(self) -> set[str]:
        """The state_dict keys of the adapters (parameter names without FSDP's and activation
        checkpointing's wrapper segments, which state_dict keys do not have)."""
        return {re.sub(WRAPPER_SEGMENTS, "", name) for name, p in self.named_parameters() if p.requires_grad}

    # -- steps -----------------------------------------------------------------------------
    def step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the tokens that carry a label (the model's own, without full logits)."""
        # Packed batches also carry `num_tokens` (for the throughput monitor), not a model input.
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS and k != "labels"}
        return causal_lm_loss(self.model, inputs, batch["labels"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss = self.step(batch)
        n_tokens = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()  # the tokens the loss averaged over
        self.val_nll.update(loss, weight=n_tokens)  # token-weighted, so perplexity is exact

    def on_validation_epoch_end(self) -> None:
        nll = self.val_nll.compute()  # synced across processes
        self.val_nll.reset()
        self.log("val/loss", nll, prog_bar=True)
        self.log("val/perplexity", nll.exp())

    # -- optimization ----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_scheduler

        h = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if h.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=h.learning_rate, weight_decay=h.weight_decay)
        else:
            import bitsandbytes as bnb

            cls = {"adamw_8bit": bnb.optim.AdamW8bit, "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
                   "paged_adamw_32bit": bnb.optim.PagedAdamW32bit}[h.optimizer]
            optimizer = cls(params, lr=h.learning_rate, weight_decay=h.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(h.warmup_ratio * total)
        name = {"constant": "constant_with_warmup"}.get(h.lr_schedule, h.lr_schedule)
        scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainable = self.trainable_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint[CHECKPOINT_KEY] = {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "prompt_style": self.style.to_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_adapter_keys(checkpoint, self.trainable_state_keys())


def check_settings(h: Any) -> None:
    problems = [
        (h.lora_r < 1, f"model.lora_r must be at least 1, got {h.lora_r}"),
        (h.lora_alpha <= 0, f"model.lora_alpha must be positive, got {h.lora_alpha}"),
        (not 0 <= h.lora_dropout < 1, f"model.lora_dropout must be in [0, 1), got {h.lora_dropout}"),
        (not h.lora_target_modules, "model.lora_target_modules is empty: name the linear layers that get adapters"),
        (h.learning_rate <= 0, f"model.learning_rate must be positive, got {h.learning_rate}"),
        (h.weight_decay < 0, f"model.weight_decay must be at least 0, got {h.weight_decay}"),
        (not 0 <= h.warmup_ratio < 1, f"model.warmup_ratio must be in [0, 1), got {h.warmup_ratio}"),
        (h.quant_storage is not None and h.quantization not in ("nf4", "fp4"),
         f"model.quant_storage only applies to 4-bit weights, but model.quantization is {h.quantization!r}: "
         "remove model.quant_storage or use nf4/fp4"),
        (h.dequantize_once and h.quantization not in ("nf4", "fp4"),
         f"model.dequantize_once only applies to 4-bit weights, but model.quantization is {h.quantization!r}: "
         "remove model.dequantize_once or use nf4/fp4"),
    ]
    for failed, message in problems:
        if failed:
            raise SettingsError(message)
