"""The training loss without the full logits: LM head and cross-entropy on labelled positions, in chunks.

A causal LM's forward projects every position onto the whole vocabulary and keeps those
logits (and their float32 copy, and the log-softmax) for the backward pass: for Falcon-7B,
65,024 float32 values per token, 490 MB for a packed micro-batch of 1,900 tokens, three
times over. Only positions whose next token carries a label contribute to the loss, and the
prompt's do not (the loss is on the answer). `causal_lm_loss` runs the decoder, keeps the
hidden states of labelled positions only, and projects them through the LM head in chunks of
`CHUNK_ROWS`; each chunk's gradient with respect to the hidden states is computed as soon as
its loss is, so at most one chunk of logits exists at a time and nothing is recomputed.

The value is the model's own loss (the mean cross-entropy over labelled tokens) up to float32
rounding: the same logits, summed in another order. Tested against `model(...).loss`.
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK_ROWS = 1024  # logits of at most this many positions at a time (266 MB in fp32 for a 65k vocabulary)
IGNORE_INDEX = -100  # transformers' ignore index (mh_lightning.data.IGNORE_INDEX)


class LinearCrossEntropy(torch.autograd.Function):
    """Sum of cross-entropies of `hidden @ weight.T` against `targets`, chunk by chunk.

    The forward computes the gradients too (softmax minus one-hot, times the weight), so the
    backward only scales them by the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                chunk_rows: int) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        for start in range(0, hidden.shape[0], chunk_rows):
            rows = hidden[start : start + chunk_rows]
            target = targets[start : start + chunk_rows]
            logits = torch.nn.functional.linear(rows, weight).float()  # what the LM head + HF's loss compute
            log_probs = torch.log_softmax(logits, dim=-1)  # as torch's cross_entropy does
            del logits
            total -= log_probs.gather(1, target[:, None]).sum()
            if need_hidden or need_weight:
                grad_logits = log_probs.exp_()  # softmax, in place
                grad_logits[torch.arange(len(target), device=target.device), target] -= 1
                grad_logits = grad_logits.to(rows.dtype)
                if need_hidden:
                    grad_hidden[start : start + chunk_rows] = grad_logits @ weight.to(rows.dtype)
                if need_weight:
                    grad_weight += grad_logits.t().float() @ rows.float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_total.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_total).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                          chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """Mean next-token cross-entropy of `hidden` (batch, length, dim) through `weight` against
    `labels` (batch, length), shifted by one as in transformers' causal-LM loss."""
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    rows = hidden[:, :-1][keep]  # (labelled positions, dim): prompt and padding never reach the LM head
    total = LinearCrossEntropy.apply(rows, weight, targets[keep], chunk_rows)
    return total / keep.sum()


def causal_lm_loss(model: torch.nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """`model(**inputs, labels=labels).loss`, without the full logits, for a (PEFT-wrapped)
    transformers causal LM whose LM head is a bias-free linear layer; otherwise the model's own."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    backbone = getattr(base, "base_model", None)
    if type(head) is not torch.nn.Linear or head.bias is not None or backbone is None or backbone is base:
        return model(**inputs, labels=labels).loss
    hidden = backbone(**inputs, use_cache=False).last_hidden_state
    return chunked_cross_entropy(hidden, head.weight, labels)
