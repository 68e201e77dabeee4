"""The CUDA paths, on the tiny model: mixed precision, bitsandbytes' 8-bit and paged optimizers,
generation on the GPU, and an FSDP-QLoRA step on one device. Skipped without a GPU (conftest)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import REPO, fit_args

from mh_lightning.checkpoint import read_checkpoint
from mh_lightning.fit import cli_main
from mh_lightning.inference import GenerationConfig, generate_answers, load_model, model_device

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
SHORT = ("--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.max_epochs", "1",
         "--samples.num_questions", "2", "--samples.max_new_tokens", "8")


def train(root: Path, *extra: str) -> dict:
    cli = cli_main(fit_args(root, *SHORT, *extra))
    loss = cli.trainer.callback_metrics["train/loss"].item()
    assert math.isfinite(loss)
    return read_checkpoint(root / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-mixed", "bfloat16"), ("16-mixed", "float16")])
def test_mixed_precision_fit(precision, dtype, tmp_path):
    checkpoint = train(tmp_path, "--trainer.precision", precision, "--model.compute_dtype", dtype)
    assert checkpoint["hyper_parameters"]["compute_dtype"] == dtype
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


@pytest.mark.parametrize("optimizer", ["adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"])
def test_bitsandbytes_optimizers_train_the_adapters(optimizer, tmp_path):
    checkpoint = train(tmp_path, "--model.optimizer", optimizer, "--trainer.precision", "bf16-mixed",
                       "--model.compute_dtype", "bfloat16")
    assert checkpoint["hyper_parameters"]["optimizer"] == optimizer
    lora_b = [v for k, v in checkpoint["state_dict"].items() if "lora_B" in k]
    assert lora_b and any(v.abs().max().item() > 0 for v in lora_b)  # B starts at zero: training moved it


def test_generation_on_the_gpu(tiny_checkpoint):
    model, tokenizer, style, _ = load_model(tiny_checkpoint, "cuda")
    assert model_device(model).type == "cuda"
    config = GenerationConfig(greedy=True, max_new_tokens=12)
    first = generate_answers(model, tokenizer, [style.prompt("How do I sleep better?")], config, style)[0]
    again = generate_answers(model, tokenizer, [style.prompt("How do I sleep better?")], config, style)[0]
    assert first.text == again.text and first.new_tokens <= 12
    assert first.stop_reason in ("eos", "stop_string", "length")


def test_fsdp_qlora_step_on_one_device(tmp_path):
    checkpoint = train(tmp_path, "--config", str(REPO / "configs" / "fsdp_qlora.yaml"), "--trainer.devices", "1",
                       "--trainer.accumulate_grad_batches", "1", "--samples.num_questions", "0")
    assert checkpoint["hyper_parameters"]["quant_storage"] == "bfloat16"
    assert checkpoint["state_dict"] and all(".lora_" in k for k in checkpoint["state_dict"])
