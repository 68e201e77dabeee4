"""Minimal reproduction: bitsandbytes 0.50.2 drops gradients through 4-bit layers on AVX512_BF16 CPUs.

Plain torch + bitsandbytes. One `Linear4bit` (NF4, double quantization, float32 compute),
as in QLoRA: the 4-bit weight is frozen, and the gradient that reaches the trainable layers
before it (LoRA adapters, embeddings) flows through it into its input.

1. an eval-mode forward without gradients (what a validation or sanity check does),
2. one training forward and backward,
3. compare the input's gradient with `grad_output @ W`, W the dequantized weight in float32.

On a CPU with AVX512_BF16 the eval forward repacks the weight for the `gemv_4bit` kernel, which
has no autograd formula, and the training step then runs that kernel: torch warns "an autograd
kernel was not registered" and no gradient reaches the input (relative error 1). With
`support_avx512bf16_for_cpu = False` it matches to float32 rounding. `state_dict()` also undoes the repacking lossily.

    python scripts/repro_bnb_avx512bf16.py            # the CPU's own setting, then the flag off
    python scripts/repro_bnb_avx512bf16.py --force    # force the repacking on a CPU without the feature
"""

from __future__ import annotations

import argparse

import bitsandbytes as bnb
import torch
from bitsandbytes.functional import dequantize_4bit, has_avx512bf16


def quantized_layer(weight: torch.Tensor, repacking: bool) -> bnb.nn.Linear4bit:
    out_features, in_features = weight.shape
    layer = bnb.nn.Linear4bit(in_features, out_features, bias=False, compute_dtype=torch.float32,
                              compress_statistics=True, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(weight.clone(), requires_grad=False, compress_statistics=True,
                                     quant_type="nf4", module=layer)
    layer = layer.to("cpu")  # quantizes
    layer.support_avx512bf16_for_cpu = repacking
    return layer


def run(repacking: bool, weight: torch.Tensor, x: torch.Tensor, grad_output: torch.Tensor) -> None:
    layer = quantized_layer(weight, repacking)
    dense = dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()  # what the layer stands for

    layer.eval()
    with torch.no_grad():
        layer(x)  # validation / sanity check: this is where the weight is repacked
    layer.train()
    inputs = x.clone().requires_grad_(True)
    layer(inputs).backward(grad_output)
    expected = grad_output @ dense
    # the repacked kernel has no backward: torch lets the gradient vanish (None) with a warning
    grad = inputs.grad if inputs.grad is not None else torch.zeros_like(inputs)
    error = ((grad - expected).norm() / expected.norm()).item()

    packed = getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    state = layer.state_dict()  # what a checkpoint save does
    restored = bnb.nn.Params4bit.from_prequantized(
        state["weight"], {k[len("weight."):]: v for k, v in state.items() if k != "weight"}, device="cpu")
    drift = (dequantize_4bit(restored.data, restored.quant_state).float() - dense).abs().max().item()
    print(f"support_avx512bf16_for_cpu={repacking!s:5}  repacked={packed!s:5}  "
          f"input-gradient relative error {error:.2e}  base-weight drift after state_dict() {drift:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="turn the repacking on even without AVX512_BF16")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, bitsandbytes {bnb.__version__}, AVX512_BF16: {has_avx512bf16()}")
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(256, 512, generator=generator) * 0.05
    x = torch.randn(4, 16, 512, generator=generator)
    grad_output = torch.randn(4, 16, 256, generator=generator)
    run(bool(has_avx512bf16()) or args.force, weight, x, grad_output)
    run(False, weight, x, grad_output)


if __name__ == "__main__":
    main()
