"""The base model in 4-bit (or 8-bit, or full precision) with LoRA adapters. No Lightning here.

Traps this module guards against (see docs and tests):
- transformers 5.x replaces only modules whose type is exactly `nn.Linear`, so it silently
  leaves Falcon's `FalconLinear` unquantized; we pin 4.57.6 and `check_quantized` stops the
  run if the decoder's linears are not bitsandbytes layers.
- Old sharded Falcon checkpoints carry the custom-code "RefinedWeb" config; we map it to
  transformers' own Falcon config in memory, so no `trust_remote_code` is needed.
- The model is quantized shard by shard at load, straight onto the target device: a 4-bit
  model is never moved or cast with `.to()` afterwards.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from typing import Any, Literal

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
from transformers.models.falcon.modeling_falcon import FalconAttention, apply_rotary_pos_emb

from mh_lightning import tiny

log = logging.getLogger(__name__)

Quantization = Literal["nf4", "fp4", "int8", "none"]
DType = Literal["bfloat16", "float16", "float32"]
DEFAULT_LORA_TARGETS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
LEGACY_FALCON_TYPES = ("RefinedWebModel", "RefinedWeb")


class ModelLoadError(RuntimeError):
    """The base model could not be loaded as asked; the message says why and what to do."""


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
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Falcon's tokenizer emits token_type_ids, which Falcon's forward and generate reject.
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    return tokenizer


# -- config --------------------------------------------------------------------------------
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
    if expand_kv_heads:
        expand_multi_query_kv(model)
    return model


def expand_multi_query_kv(model: torch.nn.Module) -> int:
    """Let SDPA use its fused kernels for Falcon's multi-query attention; returns how many layers.

    Falcon-7B has 71 query heads and one key/value head. transformers 4.57 hands that single head
    to `scaled_dot_product_attention` to be broadcast, and with a custom mask (padding, packing)
    only SDPA's math kernel accepts the broadcast: it runs in float32 and keeps every layer's
    attention matrix for the backward pass. Repeating the key/value head across the query heads
    gives the same numbers and lets the memory-efficient kernel run. Only in a forward without a
    KV cache (training, validation): generation keeps one cached head, as the model was built."""
    patched = 0
    for module in model.modules():
        if (type(module) is FalconAttention and module.multi_query and not module.new_decoder_architecture
                and module.num_kv_heads == 1 and module.num_heads > 1
                and module.config._attn_implementation == "sdpa"):
            module.__class__ = ExpandedKVFalconAttention
            patched += 1
    return patched


class ExpandedKVFalconAttention(FalconAttention):
    """`FalconAttention` whose uncached forward gives SDPA the key/value head repeated per query head.

    The rotary embedding is applied to the single key head first and only then repeated (a stride-0
    view): rotating every repeated copy would do the key work `num_heads` times (71 on Falcon-7B)
    in the forward and again in the backward."""

    def forward(self, hidden_states: torch.Tensor, alibi: torch.Tensor | None, attention_mask: torch.Tensor | None,
                *args: Any, layer_past: Any = None, output_attentions: bool = False,
                position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None, **kwargs: Any) -> Any:
        if layer_past is not None or alibi is not None or output_attentions or position_embeddings is None:
            # generation (one cached head) and the paths SDPA does not serve: as transformers builds them
            return super().forward(hidden_states, alibi, attention_mask, *args, layer_past=layer_past,
                                   output_attentions=output_attentions, position_embeddings=position_embeddings,
                                   **kwargs)
        batch, length, _ = hidden_states.shape
        fused_qkv = self.query_key_value(hidden_states).view(batch, length, self.num_heads + 2, self.head_dim)
        fused_qkv = fused_qkv.transpose(1, 2)  # (batch, heads + 2, length, head_dim), a view
        # one split (its backward writes one gradient) rather than three slices (three zero-filled
        # full-size gradients, then summed)
        query, key, value = fused_qkv.split([self.num_heads, 1, 1], dim=1)
        query, key = apply_rotary_pos_emb(query, key, *position_embeddings)
        key, value = (x.expand(-1, self.num_heads, -1, -1) for x in (key, value))
        if attention_mask is not None:
            attention_mask = attention_mask[:, :, :, :length]
        output = None
        if query.device.type == "cpu" and attention_mask is not None and attention_mask.dim() == 4:
            output = blockwise_causal_attention(query, key, value, attention_mask)
        if output is None:
            output = torch.nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0,
                is_causal=self.is_causal and attention_mask is None and length > 1,
            )
        output = output.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.dense(output), None


def blockwise_causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                               mask: torch.Tensor) -> torch.Tensor | None:
    """Attention under a block-diagonal causal mask (`mh_lightning.batching.pack_batch`'s), one
    causal SDPA call per block; None when `mask` (batch, 1, length, length) is not such a mask.

    The same result as SDPA with the mask (masked keys get exactly zero weight there), without
    computing the masked entries: on the CPU the fused kernel with a dense mask computes every
    query-key pair of the row, while causal blocks skip what lies above the diagonal and outside
    the block. The blocks are read from the mask (a block starts where a query may not see the key
    just before it), then the whole mask is checked against them. CPU only: reading the blocks on
    the host would be a device sync in every layer on a GPU."""
    length = mask.shape[-1]
    if mask.shape[1] != 1 or mask.shape[-2] != length or query.shape[2] != length:
        return None
    allowed = mask[:, 0] == 0  # (batch, length, length)
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril_()
    starts = torch.ones(mask.shape[0], length, dtype=torch.bool, device=mask.device)
    starts[:, 1:] = ~allowed.diagonal(offset=-1, dim1=1, dim2=2)
    block = starts.cumsum(dim=1)  # block number of each position
    if not torch.equal(allowed, (block[:, :, None] == block[:, None, :]) & causal):
        return None
    rows = []
    # unbind and split, not slices: their backward writes each gradient once (a slice's backward
    # zero-fills a full-size gradient per block, then sums them)
    for q, k, v, row_starts in zip(query.unbind(0), key.unbind(0), value.unbind(0), starts.tolist(), strict=True):
        bounds = [i for i, first in enumerate(row_starts) if first] + [length]
        sizes = [e - s for s, e in zip(bounds, bounds[1:], strict=False)]
        rows.append(torch.cat([
            # 4D: with 3D inputs SDPA takes its math kernel on the CPU, which keeps the attention matrix
            torch.nn.functional.scaled_dot_product_attention(qb[None], kb[None], vb[None], is_causal=True)[0]
            for qb, kb, vb in zip(q.split(sizes, 1), k.split(sizes, 1), v.split(sizes, 1), strict=True)
        ], dim=1))
    return torch.stack(rows)


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


# -- LoRA ----------------------------------------------------------------------------------
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
