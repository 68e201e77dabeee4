"""A multi-turn conversation with a trained model: the history in the training format, trimmed
to fit the context, and each reply streamed through the safety guard (`ChatSession`).
The terminal loop is `mh_lightning.cli.chat`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mh_lightning.inference.generation import (
    Answer,
    GenerationConfig,
    context_length,
    prompt_budget,
    stream_answer,
)
from mh_lightning.prompts import PromptStyle
from mh_lightning.safety import SafetyGuard


def fit_history(tokenizer: Any, style: PromptStyle, question: str,
                history: Sequence[tuple[str, str]], budget: int) -> list[tuple[str, str]]:
    """The most recent turns whose prompt with `question` fits in `budget` tokens."""
    kept = list(history)
    while kept and len(tokenizer(style.prompt(question, kept), add_special_tokens=False)["input_ids"]) > budget:
        kept.pop(0)
    return kept


@dataclass(frozen=True)
class Turn:
    shown: str  # everything written for the turn, stripped
    prompt_text: str  # the neutralised user text: what the prompt holds
    said: str  # the answer as it enters the history (the crisis reply when it was screened)
    answer: Answer


# generate(prompt_text, on_text, screen) -> Answer: streams an answer to the neutralised user text
Generate = Callable[[str, Callable[[str], None], Callable[[str], bool] | None], Answer]


def safe_turn(guard: SafetyGuard, user_text: str, generate: Generate, write: Callable[[str], None],
              first: bool, context: Sequence[str] = (), on_part: Callable[[str], None] | None = None) -> Turn:
    """One reply through the safety guard, whatever produces the answer (a local model or a server).

    Order: the crisis reply with resources (crisis messages), the disclaimer (`first` reply of a
    conversation), the answer streamed through the output screen, the resources footer (questions
    about suicide or self-harm). `context`: the user's earlier messages, oldest first, for the guard.
    `on_part(name)` is called before the first text of each part: "crisis", "disclaimer", "answer",
    "screened" (the crisis reply replacing a refused answer), "footer"."""
    decision = guard.check_input(user_text, context)
    shown: list[str] = []

    def out(text: str, part: str | None = None) -> None:
        if part is not None and on_part is not None:
            on_part(part)
        shown.append(text)
        write(text)

    if decision.preface:
        out(decision.preface + "\n\n", "crisis")
    if first:
        out(guard.disclaimer + "\n\n", "disclaimer")
    before = len(shown)
    screen = (lambda text: guard.check_output(text) == text) if guard.enabled else None
    answer = generate(decision.prompt_text, lambda text: out(text, None if len(shown) > before else "answer"), screen)
    said = answer.text
    if answer.stop_reason == "screened":
        said = guard.check_output(answer.text)
        if said != decision.preface:
            out(("\n\n" if len(shown) > before else "") + said, "screened")
    if decision.footer and answer.stop_reason != "cancelled":
        out("\n\n" + decision.footer, "footer")
    return Turn("".join(shown).strip(), decision.prompt_text, said, answer)


class ChatSession:
    """The conversation state and one turn of it; the safety guard acts in `safe_turn` only.

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

    def reply(self, user_text: str, write: Callable[[str], None], context: Sequence[str] | None = None,
              cancelled: Callable[[], bool] | None = None, on_part: Callable[[str], None] | None = None) -> str:
        """Stream the reply to `user_text` through `write` (see `safe_turn`); returns everything
        written. `context`: the user's earlier messages for the guard (default: this session's
        turns); `cancelled()` stops the generation early (a server's client went away)."""

        def generate(prompt_text: str, on_text: Callable[[str], None],
                     screen: Callable[[str], bool] | None) -> Answer:
            return stream_answer(self.model, self.tokenizer, self.prompt_for(prompt_text), self.config,
                                 on_text, self.style, self.max_context, screen, cancelled)

        if context is None:  # the guard judges the message with the user's earlier turns of this conversation
            context = [asked for asked, _ in self.history]
        turn = safe_turn(self.guard, user_text, generate, write, self.replies == 0, context, on_part)
        self.last_answer = turn.answer
        self.history.append((turn.prompt_text, turn.said))
        self.replies += 1
        return turn.shown
