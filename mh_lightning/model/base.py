"""The base model in 4-bit (or 8-bit, or full precision), and its tokenizer. No Lightning here.

Traps this module guards against (see docs and tests):
- transformers 5.x replaces only modules whose type is exactly `nn.Linear`, so it silently
  leaves Falcon's `FalconLinear` unquantized; we pin 4.57.6 and `check_quantized` stops the
  run if the decoder's linears are not bitsandbytes layers.
- Old sharded Falcon checkpoints carry the custom-code "RefinedWeb" config; we map it to
  transformers' own Falcon config in memory, so no `trust_remote_code` is needed.
- The model is quantized shard by shard at load, straight onto the target device: a 4-bit
  model is never moved or cast with `.to()` afterwards.
- bitsandbytes 0.50 repacks 4-bit weights for its AVX512-BF16 CPU kernel at the first eval
  forward without gradients, and that kernel has no backward: `load_base_model` turns the
  repacking off (`keep_cpu_4bit_weights_trainable`, docs/bnb_avx512bf16.md).
"""

from __future__ import annotations

import logging
import tempfile
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    FalconConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mh_lightning import hub
from mh_lightning.errors import ModelLoadError
from mh_lightning.model import tiny
from mh_lightning.model.attention import expand_multi_query_kv

log = logging.getLogger(__name__)

Quantization = Literal["nf4", "fp4", "int8", "none"]
DType = Literal["bfloat16", "float16", "float32"]
LEGACY_FALCON_TYPES = ("RefinedWebModel", "RefinedWeb")


def torch_dtype(name: DType | str) -> torch.dtype:
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    except KeyError:
        raise ValueError(f"compute_dtype must be bfloat16, float16 or float32, got {name!r}") from None


# -- tokenizer -----------------------------------------------------------------------------
def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The model's tokenizer; pad = EOS when it has no pad token (Falcon has none)."""
    preset = tiny.builtin_name(name_or_path)
    if preset is not None:
        tokenizer = tiny.builtin_tokenizer(preset)
    else:
        require_available(name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        except OSError as err:
            raise ModelLoadError(f"cannot load the tokenizer of {name_or_path!r}: {err}. Give a local folder "
                                 "with the tokenizer files, or a hub id reachable from here.") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Falcon's tokenizer emits token_type_ids, which Falcon's forward and generate reject.
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    return tokenizer


# -- config --------------------------------------------------------------------------------
def require_available(name_or_path: str) -> None:
    """A hub id that cannot be fetched fails now, in one line, not after a minute of retries."""
    reason = hub.unavailable(name_or_path)
    if reason is not None:
        raise ModelLoadError(f"cannot load model {name_or_path!r}: {reason}. Give a local folder with config.json, "
                             "weights and tokenizer (model.model_name: /path/to/folder, or --model for generate/chat)")


def legacy_falcon_config(raw: dict) -> FalconConfig:
    """Map a custom-code "RefinedWeb" config.json to transformers' native `FalconConfig`."""
    values = {k: v for k, v in raw.items() if k not in ("auto_map", "architectures", "model_type")}
    # RefinedWeb (40B-style) used the new decoder with grouped KV heads; RefinedWebModel (7B) did not.
    values["new_decoder_architecture"] = raw.get("model_type") == "RefinedWeb"
    renames = {"n_head": "num_attention_heads", "n_layer": "num_hidden_layers",
               "n_embed": "hidden_size", "n_head_kv": "num_kv_heads"}
    for old, new in renames.items():
        if old in values:
            values[new] = values.pop(old)
    values.setdefault("multi_query", raw.get("multi_query", True))
    values.setdefault("parallel_attn", raw.get("parallel_attn", True))
    values.setdefault("bias", raw.get("bias", False))
    return FalconConfig(**values)


def load_config(name_or_path: str) -> PretrainedConfig:
    """The model config, with legacy RefinedWeb configs mapped to native Falcon ones."""
    raw, _ = PretrainedConfig.get_config_dict(name_or_path)  # a local folder or a hub id
    if raw.get("model_type") in LEGACY_FALCON_TYPES:
        log.info("%s uses the legacy RefinedWeb config: loading it as native Falcon", name_or_path)
        return legacy_falcon_config(raw)
    return AutoConfig.from_pretrained(name_or_path)


# -- base model ----------------------------------------------------------------------------
def quantization_config(
    quantization: Quantization, compute_dtype: DType, quant_storage: DType | None = None
) -> BitsAndBytesConfig | None:
    if quantization == "none":
        return None
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization not in ("nf4", "fp4"):
        raise ValueError(f"quantization must be nf4, fp4, int8 or none, got {quantization!r}")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch_dtype(compute_dtype),
        # FSDP shards parameters by dtype: 4-bit storage must match the compute dtype there.
        bnb_4bit_quant_storage=torch_dtype(quant_storage) if quant_storage else torch.uint8,
    )


def load_base_model(
    name_or_path: str,
    quantization: Quantization = "nf4",
    compute_dtype: DType = "bfloat16",
    device: torch.device | str = "cpu",
    quant_storage: DType | None = None,
    expand_kv_heads: bool = True,
) -> PreTrainedModel:
    """Load (and quantize at load, shard by shard) the causal LM onto `device`.

    `expand_kv_heads` (see `expand_multi_query_kv`) changes speed and memory, never the numbers;
    False keeps attention exactly as transformers builds it (the HF Trainer baseline does)."""
    preset = tiny.builtin_name(name_or_path)
    if preset is not None:
        # Built-in models are written to a temporary folder so they take the same loading
        # and quantization path as a real checkpoint; the folder is gone afterwards.
        with tempfile.TemporaryDirectory(prefix="mh_lightning-") as folder:
            tiny.build(folder, preset)
            return load_base_model(folder, quantization, compute_dtype, device, quant_storage, expand_kv_heads)

    require_available(name_or_path)
    device = torch.device(device)
    device_map = {"": device.index if device.type == "cuda" and device.index is not None else str(device)}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path,
            config=load_config(name_or_path),
            quantization_config=quantization_config(quantization, compute_dtype, quant_storage),
            dtype=torch_dtype(compute_dtype),
            device_map=device_map,
            low_cpu_mem_usage=True,
        )
    except OSError as err:
        raise ModelLoadError(
            f"cannot load model {name_or_path!r}: {err}\n"
            "Give a local folder with config.json and weights, or a hub id reachable from here."
        ) from err
    check_quantized(model, quantization)
    keep_cpu_4bit_weights_trainable(model)
    if expand_kv_heads:
        expand_multi_query_kv(model)
    return model


def keep_cpu_4bit_weights_trainable(model: torch.nn.Module) -> int:
    """Turn off bitsandbytes' CPU AVX512-BF16 weight repacking on every `Linear4bit`; returns how many.

    On a CPU with AVX512_BF16 (Sapphire Rapids, AMD Zen 4), bitsandbytes 0.50.2's
    `Linear4bit.forward` repacks its weight in place the first time it runs in eval mode
    without gradients (Lightning's sanity check, validation, generation), with the scales cast
    to bfloat16. From then on `matmul_4bit` sends every matmul of that layer to the
    `gemv_4bit` kernel, in training too, and that kernel has no autograd formula: the gradient
    through the frozen base weights into the layer's input is silently dropped (torch only
    warns "bitsandbytes::gemv_4bit: an autograd kernel was not registered"). Each
    `state_dict()` then unpacks the weight and re-quantizes the scales, so the base weights
    drift at every checkpoint. Without repacking, every forward dequantizes the weights and
    runs a plain matmul, with a correct backward, on any CPU. See docs/bnb_avx512bf16.md."""
    import bitsandbytes as bnb

    layers = {name: m for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    unknown = [name for name, m in layers.items()
               if not hasattr(m, "support_avx512bf16_for_cpu") and m.weight.device.type == "cpu"]
    if unknown:
        raise ModelLoadError(
            f"bitsandbytes {bnb.__version__} has no `support_avx512bf16_for_cpu` switch on its 4-bit layers "
            f"(first {unknown[0]}), so mh_lightning cannot keep them off the CPU kernel that drops "
            "gradients. Install the pinned versions (`pip install -e .`)."
        )
    for layer in layers.values():
        layer.support_avx512bf16_for_cpu = False
    # Repacking happens in a forward; a layer repacked before this point stays on the kernel.
    repacked = [name for name, m in layers.items() if getattr(m.weight.quant_state, "packing_format_for_cpu", False)]
    if repacked:
        raise ModelLoadError(
            f"{len(repacked)} 4-bit layer(s), first {repacked[0]}, hold weights repacked for bitsandbytes' "
            "AVX512-BF16 CPU kernel, which has no backward pass: training them would drop gradients. "
            "Load the model with mh_lightning.model.load_base_model and run nothing on it before."
        )
    return len(layers)


def decoder_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The linear layers of the decoder: every `nn.Linear` but the LM head and LoRA's own."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and "lm_head" not in name and "lora_" not in name
    }


def check_quantized(model: torch.nn.Module, quantization: Quantization) -> None:
    """Stop with a clear message if the decoder's linear layers were not quantized."""
    if quantization == "none":
        return
    import bitsandbytes as bnb

    expected = bnb.nn.Linear8bitLt if quantization == "int8" else bnb.nn.Linear4bit
    linears = decoder_linears(model)
    wrong = [f"{n} ({type(m).__name__})" for n, m in linears.items() if not isinstance(m, expected)]
    if not linears or wrong:
        import transformers

        shown = ", ".join(wrong[:3]) or "no decoder linear layers found"
        raise ModelLoadError(
            f"quantization={quantization} was asked for, but the decoder's linear layers are not "
            f"{expected.__name__}: {shown}. transformers {transformers.__version__} did not quantize "
            "this model (transformers 5.x skips Falcon's FalconLinear). Install the pinned "
            "versions (`pip install -e .`) or set model.quantization: none."
        )
