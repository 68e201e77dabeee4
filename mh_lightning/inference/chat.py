"""A multi-turn conversation with a trained model: the history in the training format, trimmed
to fit the context, and each reply streamed through the safety guard (`ChatSession`).
The terminal loop is `mh_lightning.cli.chat`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
        decision = guard.check_input(user_text)
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
