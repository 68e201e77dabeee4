"""The base model in 4-bit (or 8-bit, or full precision) and its tokenizer (`base`), Falcon's
attention layout (`attention`), LoRA and the one model builder (`lora`), the checkpoint and
export file formats (`checkpoint`), the offline tiny models (`tiny`). No Lightning here."""

from mh_lightning.errors import ModelLoadError
from mh_lightning.model.attention import ExpandedKVFalconAttention, blockwise_causal_attention, expand_multi_query_kv
from mh_lightning.model.base import (
    LEGACY_FALCON_TYPES,
    DType,
    Quantization,
    check_quantized,
    decoder_linears,
    keep_cpu_4bit_weights_trainable,
    legacy_falcon_config,
    load_base_model,
    load_config,
    load_tokenizer,
    quantization_config,
    torch_dtype,
)
from mh_lightning.model.lora import DEFAULT_LORA_TARGETS, add_lora, build_lora_model

__all__ = [
    "DEFAULT_LORA_TARGETS", "DType", "ExpandedKVFalconAttention", "LEGACY_FALCON_TYPES", "ModelLoadError",
    "Quantization", "add_lora", "blockwise_causal_attention", "build_lora_model", "check_quantized",
    "decoder_linears", "expand_multi_query_kv", "keep_cpu_4bit_weights_trainable", "legacy_falcon_config",
    "load_base_model", "load_config", "load_tokenizer", "quantization_config", "torch_dtype",
]
