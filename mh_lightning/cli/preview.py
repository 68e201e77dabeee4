"""See exactly what the model is trained on, before spending GPU hours.

    mh-lightning preview --config configs/tiny_cpu.yaml --data.path data.parquet -n 3

Reads the `data:` and `model:` sections of the same yaml files as `fit` (other sections are
ignored), tokenizes every conversation as training does, and prints N examples with the
tokens that carry loss marked, token counts per example, how many examples `max_length`
cuts, and a length summary.
"""

from __future__ import annotations

import sys

from mh_lightning.cli.common import Parser, entry_point, moved_names, new_parser, parse
from mh_lightning.data.datamodule import MentalHealthDataModule
from mh_lightning.evaluation import preview as library
from mh_lightning.evaluation.preview import COLOUR_MARKS, PLAIN_MARKS, preview
from mh_lightning.training.module import FalconLoRAModule

__all__ = ["build_parser", "main", "preview"]


def build_parser() -> Parser:
    parser = new_parser("mh-lightning preview", __doc__.split("\n\n")[0])
    parser.add_argument("-n", "--num_examples", type=int, default=3, help="examples to print")
    parser.add_class_arguments(MentalHealthDataModule, "data")
    # Only model.model_name matters here (the tokenizer); the rest is accepted so the yaml fits.
    parser.add_class_arguments(FalconLoRAModule, "model", skip={"max_length"})
    parser.link_arguments("model.model_name", "data.tokenizer_name")  # as in fit
    return parser


def _main(argv: list[str]) -> int:
    config = parse(build_parser(), argv)
    marks = COLOUR_MARKS if sys.stdout.isatty() else PLAIN_MARKS
    print(preview(MentalHealthDataModule(**config.data.as_dict()), config.num_examples, marks))
    return 0


main = entry_point(_main)
__getattr__ = moved_names(library)  # the names `mh_lightning.preview` held before the library part moved


if __name__ == "__main__":
    sys.exit(main())
