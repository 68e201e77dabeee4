"""Falcon's multi-query attention, laid out so that SDPA's fused kernels accept it (same numbers)."""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.falcon.modeling_falcon import FalconAttention, apply_rotary_pos_emb


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
