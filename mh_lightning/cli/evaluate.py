"""Measure what a checkpoint learned, on the questions it was not trained on.

    mh-lightning evaluate --checkpoint runs/tiny_cpu/checkpoints/last.ckpt --out eval/ --compare_base

The data and its split come from the checkpoint (same path, columns, seed and `val_fraction`
as training; an export folder records them too, or take them from `--config`); `--data.KEY
VALUE` overrides any of them, `--split all` scores every conversation. Answers are generated
with the checkpoint's model and prompt style, then scored with torchmetrics. `--compare_base`
answers the same questions with the adapters switched off: the base model, without loading it
a second time.

Writes OUT/report.json (every figure), OUT/report.md (a table, and loss_curves.png when the
run's TensorBoard logs lie next to the checkpoint) and OUT/samples.jsonl (one line a question).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mh_lightning.cli.common import (
    Parser,
    SamplingOptions,
    entry_point,
    moved_names,
    new_parser,
    normalise_flags,
    parse,
    setup_cli,
    take,
)
from mh_lightning.data.datamodule import MentalHealthDataModule
from mh_lightning.errors import UsageError
from mh_lightning.evaluation import evaluate as library
from mh_lightning.evaluation.evaluate import evaluate
from mh_lightning.inference.loading import default_device
from mh_lightning.model.checkpoint import read_checkpoint, read_export_metadata, saved_data_settings

__all__ = ["EvaluateOptions", "build_parser", "evaluate", "main"]


@dataclass
class EvaluateOptions:
    """Evaluation

    Args:
        checkpoint: a .ckpt file written by fit, or a folder written by export.
        out: folder for report.json, report.md and samples.jsonl.
        model: a local copy of the base model the checkpoint was trained on.
        device: where to run (default: cuda when available, else cpu).
        split: val, the questions held out in training; all, every conversation.
        limit: score only the first N questions.
        compare_base: also answer with the adapters off (the base model) and compare.
        batch_size: questions generated and scored together.
    """

    checkpoint: Path
    out: Path
    model: str | None = None
    device: str = default_device()
    split: Literal["val", "all"] = "val"
    limit: int | None = None
    compare_base: bool = False
    batch_size: int = 8
    max_context: int | None = None  # filled from the sampling options


def build_parser() -> Parser:
    parser = new_parser("mh-lightning evaluate", __doc__)
    parser.add_class_arguments(EvaluateOptions, None, skip={"max_context"})
    parser.add_class_arguments(SamplingOptions, None)
    parser.set_defaults({"seed": 0})  # reproducible reports; the run records it
    # The tokenizer is the checkpoint's model's; every other data setting may be overridden.
    parser.add_class_arguments(MentalHealthDataModule, "data", skip={"tokenizer_name"})
    return parser


def checkpoint_facts(path: Path) -> tuple[dict[str, Any], int | None]:
    """The data settings a checkpoint or an export folder records (they rebuild the split), and the step."""
    if path.is_dir():
        return read_export_metadata(path).get("data_hyper_parameters") or {}, None
    checkpoint = read_checkpoint(path)
    return saved_data_settings(checkpoint), checkpoint.get("global_step")


def _checkpoint_flag(argv: Sequence[str]) -> Path | None:
    for i, token in enumerate(argv):
        if token == "--checkpoint" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if token.startswith("--checkpoint="):
            return Path(token.partition("=")[2])
    return None


def _main(argv: list[str]) -> int:
    parser = build_parser()
    checkpoint = _checkpoint_flag(normalise_flags(parser, argv))
    data_settings, step = checkpoint_facts(checkpoint) if checkpoint else ({}, None)
    for key, value in data_settings.items():  # the lowest layer: --config files, then flags, override them
        try:
            parser.set_defaults({f"data.{key}": value})
        except KeyError:
            raise UsageError(f"--checkpoint {checkpoint}: data.{key} is not a setting of data") from None
    args = parse(parser, argv)
    sampling = take(SamplingOptions, args)
    config = sampling.config()
    options = take(EvaluateOptions, args, max_context=sampling.max_context)
    if config.num_return_sequences != 1:
        raise UsageError("evaluation scores one answer per question: set --num_return_sequences 1")
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {options.limit}")
    setup_cli()
    data = MentalHealthDataModule(**args.data.as_dict())
    report = evaluate(options, data, config, step)
    print(f"wrote {options.out}/report.json, report.md and samples.jsonl ({report['questions']} questions)",
          file=sys.stderr)
    return 0


main = entry_point(_main)
__getattr__ = moved_names(library)  # the names `mh_lightning.evaluate` held before the library part moved


if __name__ == "__main__":
    sys.exit(main())
