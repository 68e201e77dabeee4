"""The HUMAN/ASSISTANT conversation format: the only place the template lives.

Training, in-training samples, generation, chat and evaluation all render text through a
`PromptStyle`, and every checkpoint records the style it was trained with (`to_dict`), so
inference always sees exactly the text the model was trained on.

    training text      "<HUMAN>: {question}\\n<ASSISTANT>: {answer}" + EOS
    generation prompt  "<HUMAN>: {question}\\n<ASSISTANT>:"

The training text is split as `prompt + completion` where `completion` is `" {answer}"`,
and the two are tokenized separately, so the tokens of a generation prompt are always a
prefix of the tokens the model was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass


class PromptFormatError(ValueError):
    """A combined text value does not hold exactly one well-formed HUMAN/ASSISTANT pair."""


@dataclass(frozen=True)
class PromptStyle:
    name: str = "human_assistant"
    human_tag: str = "<HUMAN>:"
    assistant_tag: str = "<ASSISTANT>:"
    turn_separator: str = "\n"

    # -- rendering ---------------------------------------------------------------------
    def prompt(self, question: str, history: Sequence[tuple[str, str]] = ()) -> str:
        """The generation prompt: earlier (question, answer) turns, then the open turn."""
        earlier = [self.text(q, a) for q, a in history]
        current = f"{self.human_tag} {question}{self.turn_separator}{self.assistant_tag}"
        return self.turn_separator.join([*earlier, current])

    def completion(self, answer: str) -> str:
        """What follows the prompt in a training text (before EOS)."""
        return f" {answer}"

    def text(self, question: str, answer: str) -> str:
        """The full training text of one pair, without EOS."""
        return self.prompt(question) + self.completion(answer)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Text that means the model has started a new turn: generation stops before it."""
        return (self.human_tag, self.assistant_tag)

    # -- parsing -----------------------------------------------------------------------
    def parse(self, text: str) -> tuple[str, str]:
        """Split a combined `text` value into a stripped (question, answer).

        Raises `PromptFormatError` with a short reason when a marker is missing, repeated
        or out of order, or when either part is empty. Inner newlines are kept.
        """
        if not isinstance(text, str):
            raise PromptFormatError(f"expected a string, got {type(text).__name__}")
        for tag in (self.human_tag, self.assistant_tag):
            count = text.count(tag)
            if count == 0:
                raise PromptFormatError(f"missing the {tag} marker")
            if count > 1:
                raise PromptFormatError(f"the {tag} marker appears {count} times (expected once)")
        human_at, assistant_at = text.index(self.human_tag), text.index(self.assistant_tag)
        if assistant_at < human_at:
            raise PromptFormatError(f"{self.assistant_tag} comes before {self.human_tag}")
        if text[:human_at].strip():
            raise PromptFormatError(f"text before the {self.human_tag} marker")
        question = text[human_at + len(self.human_tag) : assistant_at]
        answer = text[assistant_at + len(self.assistant_tag) :]
        return self.clean_pair(question, answer)

    @staticmethod
    def clean_pair(question: str, answer: str) -> tuple[str, str]:
        """Strip both parts and refuse empty ones (shared by both column layouts)."""
        question, answer = question.strip(), answer.strip()
        if not question:
            raise PromptFormatError("the question is empty")
        if not answer:
            raise PromptFormatError("the answer is empty")
        return question, answer

    def marker_pattern(self) -> re.Pattern[str]:
        """Matches either marker with any case and spacing, e.g. `< human >:` or `<Assistant> :`."""
        names = []
        for tag in (self.human_tag, self.assistant_tag):
            inner = tag.strip().lstrip("<").rstrip(":").rstrip(">")
            names.append(r"\s*".join(re.escape(ch) for ch in inner))
        return re.compile(r"<\s*(?:" + "|".join(names) + r")\s*>\s*:?", re.IGNORECASE)

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, str] | None) -> PromptStyle:
        return cls(**values) if values else cls()


DEFAULT_STYLE = PromptStyle()
