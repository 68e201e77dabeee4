"""Take a checkpoint elsewhere: a standard PEFT adapter folder, or a merged model folder.

    mh-lightning export --checkpoint CKPT --out exports/adapter
    mh-lightning export --checkpoint CKPT --out exports/merged --merge --dtype float16

What the folders hold and how the merge is done: `mh_lightning.inference.export`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mh_lightning.cli.common import Parser, entry_point, moved_names, new_parser, parse, setup_cli, take
from mh_lightning.errors import UsageError
from mh_lightning.inference import export as library
from mh_lightning.inference.export import export
from mh_lightning.inference.loading import default_device

__all__ = ["ExportOptions", "build_parser", "export", "main"]


@dataclass
class ExportOptions:
    """Export

    Args:
        checkpoint: a Lightning checkpoint (.ckpt) of this project or an exported adapter folder.
        out: the folder to write.
        merge: write a full model with the adapter merged in.
        dtype: with --merge, the dtype of the merged weights (default: the checkpoint's compute dtype).
        force: replace a non-empty --out folder.
        device: where to load and merge (default: cuda when available, else cpu).
    """

    checkpoint: Path
    out: Path
    merge: bool = False
    dtype: Literal["float16", "bfloat16", "float32"] | None = None
    force: bool = False
    device: str = default_device()


def build_parser() -> Parser:
    parser = new_parser("mh-lightning export", __doc__)
    parser.add_class_arguments(ExportOptions, None)
    return parser


def _main(argv: list[str]) -> int:
    options = take(ExportOptions, parse(build_parser(), argv))
    if options.dtype and not options.merge:
        raise UsageError("--dtype applies to --merge only (an adapter keeps its float32 LoRA weights)")
    setup_cli()
    metadata = export(options.checkpoint, options.out, options.merge, options.dtype, options.force, options.device)
    if options.merge:
        print(f"max |logit difference| to the 4-bit + adapter model on a probe prompt: "
              f"{metadata['max_abs_logit_diff']:.3g}", file=sys.stderr)
    print(options.out)
    return 0


main = entry_point(_main)
__getattr__ = moved_names(library)  # the names `mh_lightning.export` held before the library part moved


if __name__ == "__main__":
    sys.exit(main())
