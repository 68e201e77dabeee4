"""The guard the chat and generation commands use: input screening, output screening, the disclaimer.

    guard = SafetyGuard(region="uk")
    decision = guard.check_input(user_text, context=earlier_user_turns)  # crisis preface or resources footer
    shown = guard.check_output(model_answer)  # the answer, or the crisis reply if the answer is unsafe

`SafetyGuard(enabled=False)` (the research flag `--no-safety`) passes everything through except
marker neutralisation, which protects the prompt format itself: a user can never forge a
`<ASSISTANT>:` turn. Its warning, NO_SAFETY_WARNING, is the commands' to print on stderr; it never
enters the conversation's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mh_lightning.prompts import DEFAULT_STYLE, PromptStyle
from mh_lightning.safety.detector import NOT_ASSESSED, RiskAssessment, judge, screen_output
from mh_lightning.safety.resources import DEFAULT_REGION, crisis_reply, load_resources, resources_footer

DISCLAIMER = ("I am an AI, not a therapist, and I cannot help in an emergency. If you are in danger, "
              "call your local emergency number.")
NO_SAFETY_WARNING = ("WARNING: safety checks are off (--no-safety). Messages are not screened for crisis, "
                     "answers are not filtered and no crisis resources are shown. For research only: "
                     "never put this in front of people who may be at risk.")


def neutralize_markers(text: str, style: PromptStyle = DEFAULT_STYLE) -> str:
    """Turn every turn marker in user text, in any case or spacing, into an inert `[NAME]`."""

    def inert(marker: re.Match[str]) -> str:
        found = marker.group(0)
        spacing = "" if found.endswith(":") else found[len(found.rstrip()):]  # keep "<HUMAN> hi" spaced
        return "[" + re.sub(r"\W", "", found) + "]" + spacing

    return style.marker_pattern().sub(inert, text)


@dataclass(frozen=True)
class InputDecision:
    prompt_text: str  # the user text with turn markers neutralised: what goes into the prompt
    preface: str | None  # the crisis reply, shown BEFORE the model's answer
    footer: str | None  # one line of resources: informational question, or a conversation that was in crisis
    assessment: RiskAssessment


class SafetyGuard:
    """Screens one conversation. `enabled=False` (`--no-safety`) still neutralises turn markers."""

    def __init__(self, region: str = DEFAULT_REGION, enabled: bool = True,
                 resources_path: str | Path | None = None, style: PromptStyle = DEFAULT_STYLE) -> None:
        self.enabled = enabled
        self.style = style
        self.resources = load_resources(region, resources_path)  # also checks --region when disabled

    @property
    def disclaimer(self) -> str:
        """Shown in the conversation; with safety off the warning goes to stderr instead (the commands print it)."""
        return DISCLAIMER

    def check_input(self, user_text: str, context: Sequence[str] = ()) -> InputDecision:
        """Screen `user_text` together with `context`, the user's earlier messages of the same
        conversation, oldest first (the guard keeps no state, so a server can pass them per request).
        Once the conversation was in crisis, later replies keep the one-line resources footer."""
        prompt_text = neutralize_markers(user_text, self.style)
        if not self.enabled:
            return InputDecision(prompt_text, None, None, NOT_ASSESSED)
        found = judge(user_text, context)
        crisis = found.assessment.is_crisis
        footer = not crisis and (found.assessment.informational or found.earlier_crisis)
        return InputDecision(prompt_text, crisis_reply(self.resources) if crisis else None,
                             resources_footer(self.resources) if footer else None, found.assessment)

    def check_output(self, answer: str) -> str:
        if self.enabled and screen_output(answer).is_crisis:
            return crisis_reply(self.resources)
        return answer
