"""A multi-turn chat with a trained checkpoint, streamed to the terminal.

    mh-lightning chat --checkpoint runs/tiny_cpu/checkpoints/last.ckpt
    printf 'Hello\\n/reset\\nHow are you?\\n/exit\\n' | mh-lightning chat --checkpoint CKPT

Each turn's prompt holds the earlier turns in the training format; when they no longer fit
the context beside the answer, the oldest are dropped first. `/reset` clears the history,
`/exit` or end of input quits. On a pipe there is no prompt decoration. Nothing typed is
written anywhere unless `--save_transcript FILE` is given, and nothing goes online.
Safety (crisis replies, screening, the disclaimer) is described in `ChatSession`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mh_lightning.cli.common import (
    Parser,
    SamplingOptions,
    entry_point,
    inference_parser,
    load_guarded,
    moved_names,
    parse,
    report,
    take,
)
from mh_lightning.errors import UsageError
from mh_lightning.inference import chat as library
from mh_lightning.inference.chat import ChatSession, fit_history

__all__ = ["ChatOptions", "ChatSession", "build_parser", "fit_history", "main", "read_lines", "run"]

RESET, EXIT = "/reset", "/exit"


@dataclass
class ChatOptions:
    """Chat

    Args:
        verbose: token counts and tokens/s of each reply on stderr.
        save_transcript: write the conversation to this JSONL file (nothing is written without it).
    """

    verbose: bool = False
    save_transcript: Path | None = None


def read_lines(stream: IO[str], interactive: bool) -> Iterator[str]:
    """User messages, one a line, until /exit or end of input."""
    while True:
        if interactive:
            try:
                line = input("you> ")
            except EOFError:
                return
        else:
            line = stream.readline()
            if not line:
                return
        line = line.strip()
        if line == EXIT:
            return
        if line:
            yield line


def run(session: ChatSession, lines: Iterable[str], stdout: IO[str], interactive: bool = False,
        transcript: IO[str] | None = None, verbose: bool = False) -> int:
    """Answer each line; returns the number of replies."""

    def write(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    def record(**entry: str) -> None:
        if transcript is not None:
            transcript.write(json.dumps(entry, ensure_ascii=False) + "\n")
            transcript.flush()

    replies = 0
    for line in lines:
        if line == RESET:
            session.reset()
            record(event="reset")
            if interactive:
                write("(history cleared)\n")
            continue
        if interactive:
            write("assistant> ")
        text = session.reply(line, write)
        write("\n\n")  # a blank line between replies, which may span several lines
        if verbose and session.last_answer is not None:
            report([session.last_answer])
        record(role="user", text=line)
        record(role="assistant", text=text)
        replies += 1
    return replies


def build_parser() -> Parser:
    parser = inference_parser("mh-lightning chat", __doc__)
    parser.add_class_arguments(ChatOptions, None)
    return parser


def _main(argv: list[str]) -> int:
    args = parse(build_parser(), argv)
    options, sampling = take(ChatOptions, args), take(SamplingOptions, args)
    config = sampling.config()
    if config.num_return_sequences != 1:
        raise UsageError("--num_return_sequences: chat streams one answer per turn; leave it at 1")
    if options.save_transcript is not None and not options.save_transcript.parent.is_dir():
        raise UsageError(f"--save_transcript {options.save_transcript}: the folder does not exist")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    (model, tokenizer, style, _), guard = load_guarded(args)
    session = ChatSession(model, tokenizer, style, config, sampling.max_context, guard)
    if interactive:
        source = args.checkpoint or args.model
        print(f"Chatting with {source}. {RESET} clears the history, {EXIT} quits.\n")
        import readline  # noqa: F401  (line editing for input(); it keeps no history file unless asked)
    lines = read_lines(sys.stdin, interactive)
    try:
        if options.save_transcript is None:
            run(session, lines, sys.stdout, interactive, verbose=options.verbose)
        else:
            with options.save_transcript.open("w", encoding="utf-8") as transcript:
                run(session, lines, sys.stdout, interactive, transcript, options.verbose)
    except KeyboardInterrupt:  # Ctrl-C ends the chat, without a traceback
        print()
        return 130
    return 0


main = entry_point(_main)
__getattr__ = moved_names(library)  # the names `mh_lightning.chat` held before the library part moved


if __name__ == "__main__":
    sys.exit(main())
