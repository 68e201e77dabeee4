"""See exactly what the model is trained on, before spending GPU hours: N examples with the
tokens that carry loss marked, token counts per example, how many examples `max_length` cuts,
and a length summary. The command is `mh-lightning preview` (`mh_lightning.cli.preview`).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

from mh_lightning.data.datamodule import MentalHealthDataModule
from mh_lightning.data.loading import Conversation, split_conversations
from mh_lightning.data.tokenization import IGNORE_INDEX, tokenize_conversation
from mh_lightning.model.base import load_tokenizer

NO_LIMIT = sys.maxsize  # tokenize without cutting, to see what max_length would cut
PLAIN_MARKS = ("[[", "]]")
COLOUR_MARKS = ("\x1b[1;32m", "\x1b[0m")  # bold green on a terminal


def marked_text(tokenizer: Any, input_ids: Sequence[int], trained: Sequence[bool], marks: tuple[str, str]) -> str:
    """Decode runs of tokens, wrapping the runs that carry loss in `marks`."""
    pieces, start = [], 0
    for end in range(1, len(input_ids) + 1):
        if end == len(input_ids) or trained[end] != trained[start]:
            text = tokenizer.decode(input_ids[start:end], skip_special_tokens=False)
            pieces.append(f"{marks[0]}{text}{marks[1]}" if trained[start] else text)
            start = end
    return "".join(pieces)


def preview(datamodule: MentalHealthDataModule, num_examples: int, marks: tuple[str, str] = PLAIN_MARKS) -> str:
    """The report `mh-lightning preview` prints, with the data module's tokenizer (`connect`), or
    else the one its `tokenizer_name` names."""
    h = datamodule.hparams
    style = datamodule.style
    tokenizer = datamodule.tokenizer if datamodule.tokenizer is not None else load_tokenizer(h.tokenizer_name)
    conversations = datamodule.conversations()
    _, val = split_conversations(conversations, h.val_fraction, h.seed)
    val_rows = {c.row for c in val}
    lengths, lines = [], []
    for index, conversation in enumerate(conversations):
        # Untruncated, prompt masked: the masked count is the prompt's length.
        full = tokenize_conversation(conversation, tokenizer, NO_LIMIT, False, style)
        lengths.append(len(full.input_ids))
        if index < num_examples:
            lines += example_lines(conversation, full.input_ids, full.labels, h.max_length, h.train_on_prompt,
                                   "val" if conversation.row in val_rows else "train", tokenizer, marks)
    cut = [n for n in lengths if n > h.max_length]
    lines += [
        f"{len(lengths)} examples ({len(lengths) - len(val)} train, {len(val)} val) from {h.path}, "
        f"tokenizer {h.tokenizer_name}",
        f"tokens per example: min {min(lengths)}, median {statistics.median(lengths):g}, "
        f"max {max(lengths)}, total {sum(lengths)}",
        f"truncated at max_length={h.max_length}: {len(cut)} of {len(lengths)} examples "
        f"({sum(cut) - len(cut) * h.max_length} tokens cut in all)",
        f"Tokens that carry loss are marked {marks[0]}like this{marks[1]}; "
        + ("the prompt is trained too (train_on_prompt)." if h.train_on_prompt
           else "the prompt is context only."),
    ]
    return "\n".join(lines)


def example_lines(conversation: Conversation, input_ids: list[int], labels: list[int], max_length: int,
                  train_on_prompt: bool, split: str, tokenizer: Any, marks: tuple[str, str]) -> list[str]:
    prompt = sum(label == IGNORE_INDEX for label in labels)
    kept = input_ids[:max_length]
    trained = [train_on_prompt or label != IGNORE_INDEX for label in labels[:max_length]]
    lines = [f"--- row {conversation.row} ({split}): prompt {prompt} + answer {len(input_ids) - prompt} "
             f"(with EOS) = {len(input_ids)} tokens",
             marked_text(tokenizer, kept, trained, marks)]
    if len(input_ids) > max_length:
        lines.append(f"[cut at max_length={max_length}: the last {len(input_ids) - max_length} tokens are not seen]")
    return [*lines, ""]
