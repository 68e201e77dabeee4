"""Falcon's multi-query attention, laid out so that SDPA's fused kernels accept it (same numbers)."""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.falcon.modeling_falcon import FalconAttention


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
    """`FalconAttention` whose uncached forward sees the key/value head repeated per query head."""

    def forward(self, *args: Any, layer_past: Any = None, **kwargs: Any) -> Any:
        # the forward shapes the keys by `num_kv_heads`: every head without a cache, one with it
        self.num_kv_heads = self.num_heads if layer_past is None else 1
        return super().forward(*args, layer_past=layer_past, **kwargs)

    def _split_heads(self, fused_qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        query, key, value = super()._split_heads(fused_qkv)
        if self.num_kv_heads > 1:  # a stride-0 view; rotary embedding copies the keys, SDPA reads it
            key, value = (x.expand(-1, -1, self.num_kv_heads, -1) for x in (key, value))
        return query, key, value
