"""Conversations to token ids and labels: the prompt masked out of the loss by position, EOS
appended and trained, and batches padded (or packed) for the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mh_lightning.data.batching import pack_batch
from mh_lightning.data.loading import Conversation
from mh_lightning.prompts import DEFAULT_STYLE, PromptStyle

IGNORE_INDEX = -100  # labels with this value carry no loss (PyTorch's cross-entropy default)


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def tokenize_conversation(
    conversation: Conversation,
    tokenizer: Any,
    max_length: int,
    train_on_prompt: bool = False,
    style: PromptStyle = DEFAULT_STYLE,
) -> TokenizedExample:
    """Prompt and completion are tokenized apart, so a generation prompt's tokens are always a
    prefix of the training tokens; EOS is appended and trained, so the model learns to stop."""
    prompt_ids = tokenizer(style.prompt(conversation.question), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(style.completion(conversation.answer), add_special_tokens=False)["input_ids"]
    answer_ids = [*answer_ids, tokenizer.eos_token_id]
    input_ids = prompt_ids + answer_ids
    prompt_labels = list(prompt_ids) if train_on_prompt else [IGNORE_INDEX] * len(prompt_ids)
    labels = prompt_labels + answer_ids
    truncated = len(input_ids) > max_length
    return TokenizedExample(input_ids[:max_length], labels[:max_length], truncated)


def pad_batch(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; padding is masked by position, never by token id
    (pad = EOS, and the appended EOS must keep its label)."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class Collator:
    """Padded batches, or packed ones (several conversations per row) when `pack_to` is set."""

    def __init__(self, pad_id: int, pack_to: int | None = None) -> None:
        self.pad_id = pad_id
        self.pack_to = pack_to

    def __call__(self, examples: Sequence[TokenizedExample]) -> dict[str, torch.Tensor]:
        if self.pack_to is not None:
            return pack_batch(examples, self.pad_id, self.pack_to, IGNORE_INDEX)
        return pad_batch(examples, self.pad_id)
