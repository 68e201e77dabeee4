"""Which examples go into which batch, on which process.

`ConversationSampler` is a `DistributedSampler` (so Lightning keeps it under DDP instead
of wrapping it): the order depends only on `seed + epoch`, the same in one process or
many, which makes runs reproducible and lets a resumed run skip what was already seen.
With `group_by_length`, examples of similar length share a batch, so less of each batch
is padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler

MEGABATCH_FACTOR = 50  # batches per length-sorted group, as in transformers' length grouping


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
