"""Which examples go into which batch, on which process.

`ConversationSampler` is a `DistributedSampler` (so Lightning keeps it under DDP instead
of wrapping it): the order depends only on `seed + epoch`, the same in one process or
many, which makes runs reproducible and lets a resumed run skip what was already seen.
With `group_by_length`, examples of similar length share a batch, so less of each batch
is padding.

`pack_batch` lays a micro-batch out with several conversations per row (sequence packing):
the same conversations, the same loss, about half the padded tokens of random batches.
Attention and positions restart at every conversation, so no token sees another one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import DistributedSampler

MEGABATCH_FACTOR = 50  # batches per length-sorted group, as in transformers' length grouping
# Additive mask value for "may not attend": finite in every float dtype (fp16 included), and
# exp() of it underflows to exactly 0, so masked keys get no weight at all.
MASKED = torch.finfo(torch.float16).min


def length_grouped_order(lengths: Sequence[int], group_size: int, generator: torch.Generator) -> list[int]:
    """A random order in which each run of `group_size` examples is sorted longest first.

    Batches cut from it hold examples of similar length, while the groups stay random."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    groups = [order[i : i + group_size] for i in range(0, len(order), group_size)]
    return [i for group in groups for i in sorted(group, key=lambda i: -lengths[i])]


class ConversationSampler(DistributedSampler):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        group_by_length: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(lengths, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.group_by_length = group_by_length
        self.skip = 0  # examples of the current epoch already trained on (set when resuming)

    def epoch_order(self) -> list[int]:
        """This process's examples for `self.epoch`, before any skipping."""
        if not self.shuffle:
            order = list(range(len(self.lengths)))
        else:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            if self.group_by_length:
                group = MEGABATCH_FACTOR * self.batch_size * self.num_replicas
                order = length_grouped_order(self.lengths, group, generator)
            else:
                order = torch.randperm(len(self.lengths), generator=generator).tolist()
        # Pad by repetition to a multiple of the process count, as DistributedSampler does.
        order += order[: self.total_size - len(order)]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order()
        skip, self.skip = self.skip, 0  # skipping applies to the resumed epoch only
        return iter(order[skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


# -- packing -------------------------------------------------------------------------------
class Example(Protocol):
    input_ids: Sequence[int]
    labels: Sequence[int]


def pack_rows(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Group example indices into rows of at most `max_length` tokens, with the fewest padded tokens.

    For each row count, from the fewest that can hold the tokens to one row per example,
    examples go longest first into the least-filled row (LPT); the layout with the smallest
    rows x width wins (fewer rows on ties). Deterministic; each row lists indices in order."""
    if not lengths:
        raise ValueError("cannot pack an empty batch")
    if max(lengths) > max_length:
        raise ValueError(f"an example of {max(lengths)} tokens does not fit a row of max_length={max_length}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    best: tuple[int, list[list[int]]] | None = None
    for n_rows in range(math.ceil(sum(lengths) / max_length), len(lengths) + 1):
        rows: list[list[int]] = [[] for _ in range(n_rows)]
        loads = [0] * n_rows
        for i in order:
            row = loads.index(min(loads))
            rows[row].append(i)
            loads[row] += lengths[i]
        cost = n_rows * max(loads)
        if max(loads) <= max_length and (best is None or cost < best[0]):
            best = (cost, rows)
    assert best is not None  # one row per example always fits
    return [sorted(row) for row in best[1]]


def pack_batch(examples: Sequence[Example], pad_id: int, max_length: int, ignore_index: int) -> dict[str, Any]:
    """Several conversations per row, each with its own block of a block-diagonal causal mask.

    Returns `input_ids`, `labels`, `position_ids` (from 0 at each conversation's start, as
    when it is alone and in generation), a 4D additive `attention_mask`
    (rows, 1, width, width) and `num_tokens`, the non-padding tokens. The first label of
    every conversation is ignored: the model's label shift would otherwise predict it from
    the previous conversation's last token (alone, a conversation never predicts its first
    token either). Padding attends only to padding, so no attention row is empty."""
    lengths = [len(e.input_ids) for e in examples]
    rows = pack_rows(lengths, max_length)
    width = max(sum(lengths[i] for i in row) for row in rows)
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, ignore_index, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    # Everything masked, then one causal block per conversation, and one for the padding.
    attention_mask = torch.full((len(rows), 1, width, width), MASKED)
    causal = torch.full((width, width), MASKED).triu_(1)  # 0 on and below the diagonal
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            end = start + lengths[i]
            input_ids[r, start:end] = torch.tensor(examples[i].input_ids)
            labels[r, start + 1 : end] = torch.tensor(examples[i].labels[1:], dtype=torch.long)
            position_ids[r, start:end] = torch.arange(lengths[i])
            attention_mask[r, 0, start:end, start:end] = causal[: end - start, : end - start]
            start = end
        attention_mask[r, 0, start:, start:] = causal[: width - start, : width - start]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
            "labels": labels, "num_tokens": torch.tensor(sum(lengths))}
