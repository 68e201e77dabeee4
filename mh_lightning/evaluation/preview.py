"""See exactly what the model is trained on, before spending GPU hours.

    python -m mh_lightning.preview --config configs/tiny_cpu.yaml --data.path data.parquet -n 3

Reads the `data:` and `model:` sections of the same yaml files as `fit` (other sections are
ignored), tokenizes every conversation as training does, and prints N examples with the
tokens that carry loss marked, token counts per example, how many examples `max_length`
cuts, and a length summary.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser

from mh_lightning.cli.generate import UsageError, run_cli
from mh_lightning.data.loading import (
    IGNORE_INDEX,
    Conversation,
    MentalHealthDataModule,
    split_conversations,
    tokenize_conversation,
)
from mh_lightning.training.module import FalconLoRAModule

NO_LIMIT = sys.maxsize  # tokenize without cutting, to see what max_length would cut
PLAIN_MARKS = ("[[", "]]")
COLOUR_MARKS = ("\x1b[1;32m", "\x1b[0m")  # bold green on a terminal


def set_section_defaults(parser: ArgumentParser, section: str, values: dict[str, Any], source: str) -> None:
    """Make `values` (a yaml/checkpoint section) the defaults of `--section.*`; flags still win."""
    for key, value in values.items():
        try:
            parser.set_defaults({f"{section}.{key}": value})
        except KeyError:
            raise UsageError(f"{source}: {section}.{key} is not a setting of {section} "
                             "(see --help for the known keys)") from None


def config_sections(paths: Sequence[str], sections: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The named sections of `fit` yaml files, merged in order (later files win)."""
    merged: dict[str, dict[str, Any]] = {s: {} for s in sections}
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise UsageError(f"--config {path}: file not found")
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise UsageError(f"--config {path}: expected a mapping of sections (data:, model:, ...)")
        for section in sections:
            values = loaded.get(section) or {}
            if not isinstance(values, dict):
                raise UsageError(f"--config {path}: the {section}: section must be a mapping")
            merged[section].update(values)
    return merged


def build_parser(config_files: Sequence[str] = ()) -> ArgumentParser:
    parser = ArgumentParser(prog="python -m mh_lightning.preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[],
                        help="a fit yaml file; repeat to stack them (only data: and model: are read)")
    parser.add_argument("-n", "--num_examples", type=int, default=3, help="examples to print")
    parser.add_class_arguments(MentalHealthDataModule, "data")
    # Only model.model_name matters here (the tokenizer); the rest is accepted so the yaml fits.
    parser.add_class_arguments(FalconLoRAModule, "model", skip={"max_length"})
    parser.link_arguments("model.model_name", "data.tokenizer_name")  # as in fit
    for section, values in config_sections(config_files, ("data", "model")).items():
        set_section_defaults(parser, section, values, f"--config {' '.join(config_files)}")
    return parser


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
    """The report `python -m mh_lightning.preview` prints."""
    from mh_lightning.model.base import load_tokenizer

    h = datamodule.hparams
    style = datamodule.style
    tokenizer = load_tokenizer(h.tokenizer_name)
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


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The yaml files set defaults first, so every --data.*/--model.* flag wins over them.
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", action="append", default=[])
    config = build_parser(pre.parse_known_args(argv)[0].config).parse_args(argv)
    marks = COLOUR_MARKS if sys.stdout.isatty() else PLAIN_MARKS
    print(preview(MentalHealthDataModule(**config.data.as_dict()), config.num_examples, marks))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)  # a bad file, key or row: one line on stderr and exit code 2


if __name__ == "__main__":
    sys.exit(main())
