"""The chatbot's safety layer: crisis detection, output screening, crisis resources, offline switches.

    guard = SafetyGuard(region="uk")
    decision = guard.check_input(user_text)   # neutralised prompt text + crisis preface or resources footer
    shown = guard.check_output(model_answer)  # the answer, or the crisis reply if the answer is unsafe

Detection is deterministic, offline and explainable (`mh_lightning.safety_patterns`). Phone numbers
live only in `resources/crisis_resources.yaml`. `SafetyGuard(enabled=False)` (the research flag
`--no-safety`) passes everything through except marker neutralisation, which protects the prompt
format itself: a user can never forge a `<ASSISTANT>:` turn.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mh_lightning.errors import MHLightningError
from mh_lightning.prompts import DEFAULT_STYLE, PromptStyle
from mh_lightning.safety_patterns import Detection, detect, screen
from mh_lightning.safety_semantic import SemanticScore, load_classifier

RESOURCES_FILE = Path(__file__).resolve().parent / "resources" / "crisis_resources.yaml"
DEFAULT_REGION = "international"

DISCLAIMER = ("I am an AI, not a therapist, and I cannot help in an emergency. If you are in danger, "
              "call your local emergency number.")
NO_SAFETY_WARNING = ("WARNING: safety checks are off (--no-safety). Messages are not screened for crisis, "
                     "answers are not filtered and no crisis resources are shown. For research only: "
                     "never put this in front of people who may be at risk.")


# -- assessments --------------------------------------------------------------------------
@dataclass(frozen=True)
class RiskAssessment:
    """`is_crisis`: risk of harm to self or others, or danger, now or soon. `category`: `suicide`,
    `self_harm`, `harm_to_others`, `abuse_or_danger` or `none`. `matched`: what triggered it (rule and
    normalised text). `informational`: asks about suicide or self-harm without signalling personal risk."""

    is_crisis: bool
    category: str = "none"
    matched: tuple[str, ...] = ()
    informational: bool = False


NOT_ASSESSED = RiskAssessment(is_crisis=False)


def _from_detection(found: Detection) -> RiskAssessment:
    return RiskAssessment(found.category != "none", found.category, found.matched, found.informational)


# Rule guards that overrule a semantic hit. Not "someone else" (an abuse report names the abuser, and
# "how would someone make sure they don't wake up" is about the writer), nor an informational question
# ("do they check if you're suicidal when you buy a shotgun"): on dev they vetoed more crises than not.
OVERRULING_GUARDS = ("negation", "past", "exception", "quote", "fiction", "meaning of a word")


def combine(rules: Detection, semantic: SemanticScore | None) -> RiskAssessment:
    """The rules decide when they fire; otherwise the semantic score does, unless a rule guard says the
    risky wording is negated, in the distant past, an accident or a joke, quoted or fiction. `matched`
    names the semantic evidence, and the guard when one overruled it."""
    if rules.category != "none" or semantic is None or not semantic.is_crisis:
        return _from_detection(rules)
    guards = [g for g in rules.guards if g.split(":")[0] in OVERRULING_GUARDS]
    if guards:
        return RiskAssessment(False, "none", (semantic.evidence(), f"overruled: {'; '.join(guards)}"),
                              rules.informational)
    return RiskAssessment(True, semantic.category, (semantic.evidence(),), False)


def assess(text: str) -> RiskAssessment:
    """Assess a user message: the rules first, the semantic classifier when they do not fire."""
    rules = detect(text)
    return combine(rules, None if rules.category != "none" else load_classifier().score(text))


def screen_output(text: str) -> RiskAssessment:
    """Flag generated text that instructs or encourages suicide or self-harm (never supportive text)."""
    return _from_detection(screen(text))


def neutralize_markers(text: str, style: PromptStyle = DEFAULT_STYLE) -> str:
    """Turn every turn marker in user text, in any case or spacing, into an inert `[NAME]`."""

    def inert(marker: re.Match[str]) -> str:
        found = marker.group(0)
        spacing = "" if found.endswith(":") else found[len(found.rstrip()):]  # keep "<HUMAN> hi" spaced
        return "[" + re.sub(r"\W", "", found) + "]" + spacing

    return style.marker_pattern().sub(inert, text)


# -- crisis resources -----------------------------------------------------------------------
class ResourcesError(MHLightningError, ValueError):
    """The crisis resources file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Helpline:
    name: str
    contact: str  # how to reach it, e.g. "call or text" and the number


@dataclass(frozen=True)
class Resources:
    region: str
    name: str
    emergency: str  # what to call in an emergency
    helplines: tuple[Helpline, ...]
    directory: str | None = None  # a site that lists helplines in every country


def _text(source: Path, where: str, entry: dict[str, Any], key: str, required: bool = True) -> str | None:
    if key not in entry or entry[key] is None:
        if required:
            raise ResourcesError(f"{source}: {where} is missing key '{key}'")
        return None
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ResourcesError(f"{source}: {where}.{key} must be non-empty text, got {value!r} "
                             "(quote numbers so YAML keeps them as text: a leading zero is lost otherwise)")
    return value.strip()


def _region(source: Path, code: str, entry: Any) -> Resources:
    where = f"regions.{code}"
    if not isinstance(entry, dict):
        raise ResourcesError(f"{source}: {where} must be a mapping with name, emergency and helplines")
    lines = entry.get("helplines")
    if not isinstance(lines, list) or not lines:
        raise ResourcesError(f"{source}: {where} is missing key 'helplines' (a non-empty list of name and contact)")
    helplines = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise ResourcesError(f"{source}: {where}.helplines[{i}] must be a mapping with name and contact")
        helplines.append(Helpline(_text(source, f"{where}.helplines[{i}]", line, "name"),
                                  _text(source, f"{where}.helplines[{i}]", line, "contact")))
    return Resources(code, _text(source, where, entry, "name"), _text(source, where, entry, "emergency"),
                     tuple(helplines), _text(source, where, entry, "directory", required=False))


def load_resources(region: str = DEFAULT_REGION, path: str | Path | None = None) -> Resources:
    """Read and validate the whole resources file, then return `region` (case-insensitive)."""
    source = Path(path) if path is not None else RESOURCES_FILE
    try:
        raw = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ResourcesError(f"{source}: cannot read the crisis resources file ({err})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ResourcesError(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None
    regions = data.get("regions") if isinstance(data, dict) else None
    if not isinstance(regions, dict) or not regions:
        raise ResourcesError(f"{source}: missing key 'regions' (a mapping from region code to its resources)")
    for code in regions:
        if not isinstance(code, str):
            raise ResourcesError(f"{source}: region code {code!r} is not text (quote codes such as \"no\" or \"on\")")
    parsed = {code.lower(): _region(source, code, entry) for code, entry in regions.items()}
    if region.lower() not in parsed:
        raise ResourcesError(f"{source}: unknown region {region!r}; known regions: {', '.join(sorted(parsed))}")
    return parsed[region.lower()]


def _contacts(resources: Resources) -> list[str]:
    return [f"{line.name}: {line.contact}" for line in resources.helplines]


def crisis_reply(resources: Resources) -> str:
    """The fixed reply shown when a message signals a crisis."""
    lines = [
        "I'm really sorry you're going through this, and I'm glad you told me. You are not alone, "
        "and you deserve support right now.",
        "I'm an AI and I can't keep you safe in an emergency, but people can, right now:",
        f"- If you are in immediate danger, call {resources.emergency}.",
        *(f"- {contact}" for contact in _contacts(resources)),
    ]
    if resources.directory:
        lines.append(f"- Find a helpline near you: {resources.directory}")
    lines.append("Please reach out to one of them now, or to someone you trust nearby. If you can, go "
                 "somewhere safe and stay with someone until you feel safer.")
    return "\n".join(lines)


def resources_footer(resources: Resources) -> str:
    """One line of resources added under answers to questions about suicide or self-harm."""
    more = f"; more helplines at {resources.directory}" if resources.directory else ""
    return (f"If you or someone you know is struggling, support is available: {'; '.join(_contacts(resources))}"
            f"; in an emergency, call {resources.emergency}{more}.")


# -- the guard the chat and generation commands use -----------------------------------------------
@dataclass(frozen=True)
class InputDecision:
    prompt_text: str  # the user text with turn markers neutralised: what goes into the prompt
    preface: str | None  # the crisis reply, shown BEFORE the model's answer
    footer: str | None  # one line of resources, shown after the answer to an informational question
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
        return DISCLAIMER if self.enabled else f"{DISCLAIMER}\n{NO_SAFETY_WARNING}"

    def check_input(self, user_text: str, context: Sequence[str] = ()) -> InputDecision:
        """Screen `user_text`; `context` holds the user's earlier messages of the same conversation,
        oldest first (the guard keeps no state, so a server can pass them per request). Once an
        earlier message was a crisis, later replies keep the one-line resources footer."""
        prompt_text = neutralize_markers(user_text, self.style)
        if not self.enabled:
            return InputDecision(prompt_text, None, None, NOT_ASSESSED)
        found = assess(user_text)
        was_crisis = not found.is_crisis and any(assess(earlier).is_crisis for earlier in context)
        footer = found.informational or was_crisis
        return InputDecision(prompt_text, crisis_reply(self.resources) if found.is_crisis else None,
                             resources_footer(self.resources) if footer else None, found)

    def check_output(self, answer: str) -> str:
        if self.enabled and screen_output(answer).is_crisis:
            return crisis_reply(self.resources)
        return answer


# -- offline ------------------------------------------------------------------------------
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",  # never send a stored hub token anywhere
    "WANDB_MODE": "offline",
}


def enforce_offline() -> None:
    """Keep conversations on this machine: no hub downloads, no telemetry, no tracking.

    Sets the environment switches, and also the flags of Hugging Face libraries that were
    already imported (they read the environment once, at import).
    """
    os.environ.update(OFFLINE_ENV)
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = hub.HF_HUB_DISABLE_TELEMETRY = hub.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None:
        transformers_hub._is_offline_mode = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = datasets_config.HF_DATASETS_OFFLINE = True
