"""`mh-lightning SUBCOMMAND [FLAGS]`: one entry point, one module per subcommand.

A subcommand is one line in `SUBCOMMANDS`: its name, the `module:function` that runs it (a
function taking the argument list and returning the exit code; imported only when run) and
a one-line description.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from mh_lightning import __version__
from mh_lightning.errors import EXIT_USAGE

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("mh_lightning.cli.fit:fit", "train from yaml configs (LightningCLI: --config, --data.*, --trainer.*)"),
    "validate": ("mh_lightning.cli.fit:validate", "score the validation split with a config and a checkpoint"),
    "preview": ("mh_lightning.cli.preview:main", "show exactly which tokens training sees and trains on"),
    "generate": ("mh_lightning.cli.generate:main", "answer questions with a checkpoint or export folder"),
    "chat": ("mh_lightning.cli.chat:main", "a multi-turn chat, streamed, through the safety layer"),
    "evaluate": ("mh_lightning.cli.evaluate:main", "score a checkpoint on held-out questions, write a report"),
    "export": ("mh_lightning.cli.export:main", "write a PEFT adapter folder or a merged model"),
    "serve": ("mh_lightning.serve.cli:main", "a web chat and an OpenAI-compatible API, behind the safety layer"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"usage: mh-lightning {{{','.join(SUBCOMMANDS)}}} [--help] [--debug] [FLAGS]", "",
             "QLoRA fine-tuning of Falcon on mental-health conversations, and a safe chatbot on top.", "",
             "subcommands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in SUBCOMMANDS.items()]
    lines += ["", "`mh-lightning SUBCOMMAND --help` documents each one's flags. --debug shows the traceback "
              "of an error instead of one line."]
    return "\n".join(lines)


def resolve(target: str) -> Callable[[list[str]], int]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version":
        print(f"mh-lightning {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand {name!r}; choose one of {', '.join(SUBCOMMANDS)} "
              "(mh-lightning --help)", file=sys.stderr)
        return EXIT_USAGE
    return resolve(SUBCOMMANDS[name][0])(rest)
