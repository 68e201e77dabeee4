"""The rule engine of the crisis detector: compiles `rule_tables`, finds matches, applies guards.

A message is normalised (`normalize`), then matched against first-person constructions of intent
or ideation, method-seeking questions and reports of danger. Each hit is checked by guards that
explain it away: negation ("i would never ..."), distant past, someone else as the subject, quoted
fiction, idioms, accidents and jokes. What survives names the rule and the text it matched. The
rules explain; the fine-tuned classifier (`classifier`) judges context the rules cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mh_lightning.safety import rule_tables as tables
from mh_lightning.safety.normalize import normalize

CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse_or_danger")  # order = priority


def _expand(pattern: str) -> str:
    for _ in range(2):  # fragments may use fragments
        pattern = re.sub(r"<([A-Z]+)>", lambda m: tables.FRAGMENTS[m.group(1)], pattern)
    return pattern


@dataclass(frozen=True)
class Rule:
    """One sentence shape. Guards: `neg` (negated just before), `subj` (someone else is the subject),
    `past` (distant past without relapse), `guard` (sentence-level exceptions), `context` (needed elsewhere
    in the message), `anchor` (needs a first-person word or a now-marker in the sentence)."""

    name: str
    category: str
    pattern: re.Pattern[str]
    neg: bool = True
    subj: bool = True
    past: bool = True
    guard: re.Pattern[str] | None = None
    context: re.Pattern[str] | None = None
    anchor: bool = False


def compile_rule(name: str, category: str, pattern: str, guard: str | None = None, context: str | None = None,
                 **flags: bool) -> Rule:
    if category not in CATEGORIES:
        raise ValueError(f"rule_tables: rule {name!r} has category {category!r}; use one of {CATEGORIES}")
    return Rule(name, category, re.compile(_expand(pattern)), guard=re.compile(_expand(guard)) if guard else None,
                context=re.compile(_expand(context)) if context else None, **flags)


RULES: tuple[Rule, ...] = tuple(compile_rule(**spec) for spec in tables.RULES)
OUTPUT_RULES: tuple[Rule, ...] = tuple(
    Rule("output." + name, category, re.compile(_expand(pattern)), subj=False, past=False,
         context=re.compile(context[0]) if context else None)
    for name, category, pattern, *context in tables.OUTPUT_RULES)
_NEGATOR = re.compile(tables.NEGATOR)
_NOT_NEGATING = re.compile(tables.NOT_NEGATING)
_ASKED = re.compile(tables.ASKED)
_CLAUSE = re.compile(tables.CLAUSE)
_SENTENCE = re.compile(tables.SENTENCE)
_DISTANT = re.compile(tables.DISTANT)
_CURRENT = re.compile(tables.CURRENT)
_RECOVERY = re.compile(tables.RECOVERY)
_RELAPSE = re.compile(tables.RELAPSE)
_ANCHOR = re.compile(tables.ANCHOR)
_OTHERS_AFTER = re.compile(tables.OTHERS_AFTER)
_META = re.compile(tables.META)
_FICTION = re.compile(tables.FICTION)
_INFO_TOPIC = re.compile(tables.INFO_TOPIC)
_INFO_ASK = re.compile(tables.INFO_ASK)
_SUPPORTIVE_PREFIX = re.compile(tables.SUPPORTIVE_PREFIX)


def _last_words(text: str, boundary: re.Pattern[str]) -> list[str]:
    return boundary.split(text)[-1].split()


_NOT_AS_IF = re.compile(r"\b(?:not like|not that|not as if|not as though) i (?:\w+ ){0,2}$")


def _negated(prefix: str) -> bool:
    """A negator between the clause's last "i" and the match: "i would never ...", "i am not going to ...",
    or one just before that "i": "it is not like i want to ..."."""
    words = _last_words(prefix, _CLAUSE)
    if _NOT_AS_IF.search(" ".join(words) + " "):
        return True
    if "i" in words:
        words = words[len(words) - words[::-1].index("i"):]
    return bool(_NEGATOR.search(_NOT_NEGATING.sub(" ", " ".join(words[-6:]))))


def _someone_else(prefix: str, objects: bool = True) -> bool:
    """The nearest person named before the match in its sentence is not the writer.

    A noun or possessive counts only in subject position, i.e. last or before a verb or function word:
    "my friend says ...", "people who ..." count; "my dads gun" (apostrophes are gone) does not."""
    words = _last_words(prefix, _SENTENCE)
    for k in range(len(words) - 1, -1, -1):
        word = words[k]
        if word in tables.FIRST and (objects or word == "i"):
            return False
        if word in tables.THIRD or (word.endswith("s") and word[:-1] in tables.THIRD):
            after = words[k + 1] if k + 1 < len(words) else None
            if (word in tables.PRONOUNS or after is None or after in tables.FUNCTION_WORDS
                    or after.endswith(("s", "ed", "ing"))):
                return True
    return False


def _sentence_around(text: str, start: int, end: int) -> str:
    left = max((m.end() for m in re.finditer(r"[.!?;\n]", text[:start])), default=0)
    right = re.search(r"[.!?;\n]", text[end:])
    return text[left:end + right.start()] if right else text[left:]


def _in_reported_quote(text: str, start: int) -> bool:
    """Inside quotes that someone else says, or in a story: `he screams "i want to kill myself"`."""
    for quote in re.finditer(r'"[^"]*"', text):
        if quote.start() < start < quote.end():
            return bool(_FICTION.search(text)) or _someone_else(text[:quote.start()].rstrip(' :,"'), objects=False)
    return False


def _guarded_by(rule: Rule, text: str, match: re.Match[str]) -> str | None:
    """The guard that explains the match away (`negation`, `someone else`, `past`, ...), or None: it fires."""
    prefix, sentence = text[:match.start()], _sentence_around(text, match.start(), match.end())
    if rule.neg and (_negated(prefix) or _ASKED.search(" ".join(_last_words(prefix, _SENTENCE)))):
        return "negation"
    if rule.subj and not match.group(0).startswith(("i ", "my ")) and _someone_else(prefix):
        return "someone else"
    if rule.past and _DISTANT.search(sentence) and (not _CURRENT.search(text)
                                                     or (_RECOVERY.search(text) and not _RELAPSE.search(text))):
        return "past"
    if rule.guard is not None and rule.guard.search(sentence):
        return "exception"  # accidents, leisure, jokes, ...
    if rule.context is not None and not rule.context.search(text):
        return "context"
    if rule.anchor and (not _ANCHOR.search(sentence) or _OTHERS_AFTER.match(text, match.end())):
        return "someone else"
    if _in_reported_quote(text, match.start()):
        return "quote"
    return None


def find(rules: tuple[Rule, ...], text: str, guarded: list[str] | None = None) -> list[tuple[Rule, str]]:
    """Every (rule, matched text) that survives its guards, in rule order, on normalised `text`.

    `guarded`, if given, collects `guard: "text"` for each rule whose every match a guard explained away."""
    hits = []
    for rule in rules:
        reason = None
        for match in rule.pattern.finditer(text):
            reason = _guarded_by(rule, text, match)
            if reason is None:
                hits.append((rule, match.group(0)))
                break
            if guarded is not None and not any(g.endswith(f'"{match.group(0)}"') for g in guarded):
                guarded.append(f'{reason}: "{match.group(0)}"')
    return hits


@dataclass(frozen=True)
class Detection:
    category: str  # one of CATEGORIES, or "none"
    matched: tuple[str, ...]
    informational: bool
    guards: tuple[str, ...] = ()  # no crisis: why risky wording is not a risk (`negation: "kill myself"`, `fiction`)


def detect(text: str) -> Detection:
    """Classify a user message (see the module docstring)."""
    norm = normalize(text)
    guarded: list[str] = []
    hits = [] if _META.search(norm) else find(RULES, norm, guarded)
    if hits:
        category = min((rule.category for rule, _ in hits), key=CATEGORIES.index)
        return Detection(category, tuple(f'{rule.name}: "{found}"' for rule, found in hits), False)
    fiction = _FICTION.search(norm)
    informational = bool(_INFO_TOPIC.search(norm) and _INFO_ASK.search(norm) and not fiction)
    guards = (*(["meaning of a word"] if _META.search(norm) else []), *(["fiction"] if fiction else []), *guarded)
    return Detection("none", (), informational, guards)


def screen(text: str) -> Detection:
    """Find instructions or encouragement for suicide or self-harm in generated text."""
    norm = normalize(text)
    hits = [(rule, found) for rule, found in find(OUTPUT_RULES, norm)
            if not _SUPPORTIVE_PREFIX.search(" ".join(_last_words(norm[:norm.find(found)], _CLAUSE)))]
    if not hits:
        return Detection("none", (), False)
    category = min((rule.category for rule, _ in hits), key=CATEGORIES.index)
    return Detection(category, tuple(f'{rule.name}: "{found}"' for rule, found in hits), False)
