"""Dequantize the frozen 4-bit base weights once per run instead of twice per micro-batch.

bitsandbytes' 4-bit layers dequantize their weight in every forward and again in every
backward. With LoRA the base is frozen, so every one of those dequantizations yields the same
tensor. `dequantize_once` keeps that tensor (in the compute dtype) next to the 4-bit weight and
runs the layer as a plain `linear` on it: the same numbers (the same kernels produce the same
weight, and the same matmuls use it), no dequantization after the first, for the memory of
the base in the compute dtype (80 MB for the 20M CPU model; 13.8 GB in bf16 for Falcon-7B,
which is why it is off in the GPU configs unless measured to fit).

The 4-bit weight itself is untouched: checkpoints, adapter export and merging see the
quantized model as loaded.
"""

from __future__ import annotations

import bitsandbytes as bnb
import bitsandbytes.functional as bnbF
import torch


def dequantized_weight(layer: torch.nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The layer's weight as bitsandbytes dequantizes it for its matmuls, in `dtype`."""
    weight = layer.weight
    with torch.no_grad():
        return bnbF.dequantize_4bit(weight.data.view(-1, 1), weight.quant_state).to(dtype)


def dequantize_once(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Give every 4-bit linear of `model` its dequantized weight; returns how many layers.

    Call it right after loading, before any forward: bitsandbytes repacks 4-bit weights for
    CPU inference on the first forward in eval mode, and the copy must be of the layout the
    training matmuls dequantize."""
    layers = [m for m in model.modules() if type(m) is bnb.nn.Linear4bit]
    for layer in layers:
        layer.register_buffer("dequantized", dequantized_weight(layer, dtype), persistent=False)
        layer.__class__ = DequantizedLinear4bit
    return len(layers)


class DequantizedLinear4bit(bnb.nn.Linear4bit):
    """A bitsandbytes `Linear4bit` whose matmuls use the weight dequantized at load."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.dequantized
        bias = None if self.bias is None else self.bias.to(weight.dtype)
        return torch.nn.functional.linear(x.to(weight.dtype), weight, bias).to(x.dtype)
