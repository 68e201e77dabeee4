"""A multi-turn chat with a trained checkpoint, streamed to the terminal.

    python -m mh_lightning.chat --checkpoint runs/tiny_cpu/checkpoints/last.ckpt
    printf 'Hello\\n/reset\\nHow are you?\\n/exit\\n' | python -m mh_lightning.chat --checkpoint CKPT

Each turn's prompt holds the earlier turns in the training format; when they no longer fit
the context beside the answer, the oldest are dropped first. `/reset` clears the history,
`/exit` or end of input quits. On a pipe there is no prompt decoration. Nothing typed is
written anywhere unless `--save-transcript FILE` is given, and nothing goes online.
Safety (crisis replies, screening, the disclaimer) is described in `ChatSession`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from mh_lightning.generate import (
    UsageError,
    generation_config,
    inference_parser,
    load_model,
    report,
    run_cli,
    safety_guard,
    setup_cli,
)
from mh_lightning.inference import (
    Answer,
    GenerationConfig,
    context_length,
    prompt_budget,
    stream_answer,
)
from mh_lightning.prompts import PromptStyle
from mh_lightning.safety import SafetyGuard

RESET, EXIT = "/reset", "/exit"


def fit_history(tokenizer: Any, style: PromptStyle, question: str,
                history: Sequence[tuple[str, str]], budget: int) -> list[tuple[str, str]]:
    """The most recent turns whose prompt with `question` fits in `budget` tokens."""
    kept = list(history)
    while kept and len(tokenizer(style.prompt(question, kept), add_special_tokens=False)["input_ids"]) > budget:
        kept.pop(0)
    return kept


class ChatSession:
    """The conversation state and one turn of it; the safety guard acts in `reply` only.

    With safety on (the default), the answer streams a sentence at a time: each sentence is
    shown only after the guard has screened the whole answer up to it, and a refused answer
    stops generation and is replaced by the crisis reply, so unsafe text never reaches the
    screen. With `SafetyGuard(enabled=False)` it streams token by token, unscreened.
    """

    def __init__(self, model: Any, tokenizer: Any, style: PromptStyle, config: GenerationConfig,
                 max_context: int | None = None, guard: SafetyGuard | None = None) -> None:
        self.model, self.tokenizer, self.style, self.config = model, tokenizer, style, config
        self.max_context = context_length(model, max_context)
        self.budget = prompt_budget(self.max_context, config.max_new_tokens)
        self.guard = guard if guard is not None else SafetyGuard(style=style)
        self.history: list[tuple[str, str]] = []
        self.replies = 0
        self.last_answer: Answer | None = None

    def reset(self) -> None:
        self.history = []

    def prompt_for(self, question: str) -> str:
        """The prompt for `question`; drops the oldest turns for good when they no longer fit."""
        self.history = fit_history(self.tokenizer, self.style, question, self.history, self.budget)
        return self.style.prompt(question, self.history)

    def reply(self, user_text: str, write: Callable[[str], None]) -> str:
        """Stream the reply to `user_text` through `write`; returns everything written.

        Order: the crisis reply with resources (crisis messages), the disclaimer (first reply
        of the session), the model's screened answer, the resources footer (questions about
        suicide or self-harm). Only the neutralised user text enters the prompt."""
        guard = self.guard
        decision = guard.check_input(user_text, [asked for asked, _ in self.history])  # earlier user turns
        shown: list[str] = []

        def out(text: str) -> None:
            shown.append(text)
            write(text)

        if decision.preface:
            out(decision.preface + "\n\n")
        if self.replies == 0:
            out(guard.disclaimer + "\n\n")
        before = len(shown)
        screen = (lambda text: guard.check_output(text) == text) if guard.enabled else None
        answer = stream_answer(self.model, self.tokenizer, self.prompt_for(decision.prompt_text), self.config,
                               out, self.style, self.max_context, screen)
        said = answer.text
        if answer.stop_reason == "screened":
            said = guard.check_output(answer.text)
            if said != decision.preface:
                out(("\n\n" if len(shown) > before else "") + said)
        if decision.footer:
            out("\n\n" + decision.footer)
        self.last_answer = answer
        self.history.append((decision.prompt_text, said))
        self.replies += 1
        return "".join(shown).strip()


# -- the terminal loop ---------------------------------------------------------------------
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


def build_parser() -> argparse.ArgumentParser:
    parser = inference_parser("mh_lightning.chat", __doc__)
    parser.add_argument("--verbose", action="store_true", help="token counts and tokens/s of each reply on stderr")
    parser.add_argument("--save-transcript", "--save_transcript", dest="save_transcript", type=Path,
                        help="write the conversation to this JSONL file (nothing is written without it)")
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    config = generation_config(args)
    if config.num_return_sequences != 1:
        raise UsageError("--num-return-sequences: chat streams one answer per turn; leave it at 1")
    if args.save_transcript is not None and not args.save_transcript.parent.is_dir():
        raise UsageError(f"--save-transcript {args.save_transcript}: the folder does not exist")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    guard = safety_guard(args)
    setup_cli()
    model, tokenizer, style, _ = load_model(args)
    guard.style = style  # neutralise the markers of the format this checkpoint was trained with
    session = ChatSession(model, tokenizer, style, config, args.max_context, guard)
    if interactive:
        print(f"Chatting with {args.checkpoint or args.model}. {RESET} clears the history, {EXIT} quits.\n")
        import readline  # noqa: F401  (line editing for input(); it keeps no history file unless asked)
    lines = read_lines(sys.stdin, interactive)
    try:
        if args.save_transcript is None:
            run(session, lines, sys.stdout, interactive, verbose=args.verbose)
        else:
            with args.save_transcript.open("w", encoding="utf-8") as transcript:
                run(session, lines, sys.stdout, interactive, transcript, args.verbose)
    except KeyboardInterrupt:  # Ctrl-C ends the chat, without a traceback
        print()
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
