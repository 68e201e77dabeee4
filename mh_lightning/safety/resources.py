"""Crisis resources: the helplines file, its validation, the crisis reply and the one-line footer.

Phone numbers live only in `resources/crisis_resources.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mh_lightning.errors import MHLightningError

RESOURCES_FILE = Path(__file__).resolve().parents[1] / "resources" / "crisis_resources.yaml"
DEFAULT_REGION = "international"


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
