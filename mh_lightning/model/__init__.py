"""The base model in 4-bit (or 8-bit, or full precision) with LoRA adapters, the offline tiny
models, and the checkpoint format. No Lightning here."""

from mh_lightning.model.base import (
    DEFAULT_LORA_TARGETS,
    LEGACY_FALCON_TYPES,
    DType,
    ExpandedKVFalconAttention,
    ModelLoadError,
    Quantization,
    add_lora,
    check_quantized,
    decoder_linears,
    expand_multi_query_kv,
    legacy_falcon_config,
    load_base_model,
    load_config,
    load_tokenizer,
    quantization_config,
    torch_dtype,
)

__all__ = [
    "DEFAULT_LORA_TARGETS", "LEGACY_FALCON_TYPES", "DType", "ExpandedKVFalconAttention", "ModelLoadError",
    "Quantization", "add_lora", "check_quantized", "decoder_linears", "expand_multi_query_kv",
    "legacy_falcon_config", "load_base_model", "load_config", "load_tokenizer", "quantization_config", "torch_dtype",
]
