"""Measure the crisis detector on labelled messages: recall, false-positive rate, per phenomenon, errors.

Rows are dicts with `text` and `crisis` (true/false); optional `phenomenon` (or `kind`) groups the
table, `context` (a list of earlier user turns, oldest first) is passed to the detector. Used by
scripts/eval_safety.py and the tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from mh_lightning.safety.detector import assess

if TYPE_CHECKING:
    import torch


def read(path: Path, split: str | None) -> list[dict]:
    """The rows of a JSONL file (those of `split` when given); ValueError names the file and line."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("crisis"), bool):
            raise ValueError(f"{path}:{i}: needs text (string) and crisis (true/false)")
        if split is None or row.get("split") == split:
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows" + (f" with split {split!r}" if split else ""))
    return rows


def counsel_chat(csv_path: Path, labels_path: Path) -> list[dict]:
    """Real questions from the counsel-chat CSV (title and body as one message) with the labels of
    `labels_path` (JSONL: `id` = questionID, `crisis`, `unsure`); `phenomenon` is the site's topic,
    `unsure` the labeller's doubt. The CSV is not shipped (users fetch it); a label whose id the CSV
    lacks is a ValueError naming it."""
    import pandas as pd

    try:
        frame = pd.read_csv(csv_path)
    except pd.errors.ParserError as err:
        raise ValueError(f"{csv_path}: not a CSV ({err})") from None
    missing = [c for c in ("questionID", "questionTitle", "questionText", "topic") if c not in frame.columns]
    if missing:
        raise ValueError(f"{csv_path}: no column {', '.join(missing)}: is it counsel-chat's CSV?")
    frame = frame.drop_duplicates("questionID").set_index("questionID")
    rows = []
    for i, line in enumerate(labels_path.read_text(encoding="utf-8").splitlines(), 1):
        label = json.loads(line)
        if label["id"] not in frame.index:
            raise ValueError(f"{labels_path}:{i}: questionID {label['id']} is not in {csv_path}")
        question = frame.loc[label["id"]]
        body = "" if pd.isna(question["questionText"]) else str(question["questionText"])
        rows.append({"text": f"{question['questionTitle']} {body}".strip(), "crisis": label["crisis"],
                     "phenomenon": str(question["topic"]), "unsure": label["unsure"]})
    return rows


def evaluate(rows: list[dict]) -> dict:
    """Counts, rates, per-phenomenon table and the errors, for rows with text and crisis."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"crisis": 0, "caught": 0, "calm": 0, "flagged": 0})
    errors = []
    for row in rows:
        found = assess(row["text"], row.get("context") or ())
        group = table[str(row.get("phenomenon") or row.get("kind") or "-")]
        if row["crisis"]:
            group["crisis"] += 1
            group["caught"] += found.is_crisis
        else:
            group["calm"] += 1
            group["flagged"] += found.is_crisis
        if found.is_crisis != row["crisis"]:
            errors.append({"kind": "miss" if row["crisis"] else "false alarm", "text": row["text"],
                           "phenomenon": row.get("phenomenon") or row.get("kind"), "matched": list(found.matched)})
    crisis = sum(g["crisis"] for g in table.values())
    calm = sum(g["calm"] for g in table.values())
    caught = sum(g["caught"] for g in table.values())
    flagged = sum(g["flagged"] for g in table.values())
    return {"messages": len(rows), "crisis": crisis, "caught": caught, "calm": calm, "flagged": flagged,
            "recall": round(caught / crisis, 4) if crisis else None,
            "fpr": round(flagged / calm, 4) if calm else None,
            "phenomena": dict(sorted(table.items())), "errors": errors}


# The writers tagged almost every message on its own (tens of thousands of tags), so the docs' tables
# group the tags by keyword: a tag (lowercased, "_" and "-" read as spaces) joins the first group
# that one of its keywords starts a word of, else "other". The order decides overlaps ("third person"
# before "a third party", plans before medication).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conversations (earlier turns)", ("conversation", "build up", "buildup", "multi turn", "escalat")),
    ("disguised spellings, shorthand, slang", ("disguis", "obfuscat", "leet", "spelling", "asterisk", "shorthand",
                                               "slang", "abbreviat", "censor", "spaced", "hyphen", "unalive",
                                               "algospeak", "emoji", "coded", "euphemis")),
    ("one sentence in a long or mixed message", ("long", "buried", "mixed", "rambl", "embedded", "hidden in",
                                                 "paragraph", "tangent")),
    ("third person, second person, hypothetical", ("third person", "second person", "hypothetical",
                                                   "for a friend", "self as other")),
    ("non-native grammar, code-switching", ("non native", "nonnative", "esl", "code switch", "codeswitch", "hinglish",
                                            "taglish", "spanglish", "pidgin", "singlish", "translat", "grammar")),
    ("typos, very short", ("typo", "short", "terse", "one word", "misspell", "lowercase")),
    ("recovery told in the past", ("recover", "past", "clean", "sober", "anniversar", "milestone", "survivor")),
    ("a third party: worried friend, quoting, how to help", ("third party", "friend", "worried", "quot", "how to help",
                                                              "concern", "parent", "teacher", "sibling")),
    ("fiction, literature, games, news, film, music", ("fiction", "novel", "story", "writ", "literat", "poem",
                                                       "poetry", "play", "soliloquy", "game", "gaming", "news",
                                                       "film", "movie", "song", "lyric", "music", "book", "show",
                                                       "podcast", "history", "true crime")),
    ("goodbyes, final arrangements", ("goodbye", "farewell", "final", "arrangement", "giving away", "give away",
                                      "letter", "note", "affairs")),
    ("grief, death without risk", ("grief", "griev", "bereave", "death", "died", "loss", "mourn", "funeral", "ashes")),
    ("idioms, hyperbole, embarrassment, dark humour", ("idiom", "hyperbol", "exaggerat", "embarrass", "dark humo",
                                                       "joke", "humo", "sarcas", "figure of speech", "expression")),
    ("plans, means, timing, method-seeking", ("plan", "means", "method", "timing", "date", "rope", "pill", "gun",
                                              "bridge", "stockpil", "lethal", "how many", "overdose")),
    ("medication, medical, first aid", ("medic", "dose", "dosage", "pharm", "nurs", "first aid", "clinical")),
    ("abuse, immediate danger", ("abuse", "danger", "violen", "threat", "stalk", "assault", "trafficking", "unsafe",
                                 "domestic", "coercive")),
    ("harm to others, anger", ("harm to others", "hurt someone", "homicid", "anger", "angry", "rage", "revenge")),
    ("self-harm now", ("self harm", "selfharm", "cutting", "cut", "burn", "relapse")),
    ("sadness, stress, loneliness, burnout", ("sad", "stress", "lonel", "burnout", "burn out", "tired", "exhaust",
                                              "depress", "anxi", "vent")),
    ("ideation: explicit, indirect, passive", ("ideation", "suicid", "passive", "wish", "explicit", "indirect",
                                               "want to die")),
)


def group_of(tag: str) -> str:
    """The group of `GROUPS` a phenomenon tag belongs to ("other" when no keyword starts one of its words)."""
    words = " " + tag.lower().replace("_", " ").replace("-", " ")
    for name, keywords in GROUPS:
        if any(f" {keyword}" in words for keyword in keywords):
            return name
    return "other"


def grouped(*phenomena: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Per-phenomenon tables (`evaluate(...)["phenomena"]`, one or several files') summed by `group_of`,
    in the order of GROUPS."""
    table = {name: {"crisis": 0, "caught": 0, "calm": 0, "flagged": 0} for name, _ in (*GROUPS, ("other", ()))}
    for tag, counts in (item for one in phenomena for item in one.items()):
        for key, value in counts.items():
            table[group_of(tag)][key] += value
    return {name: counts for name, counts in table.items() if counts["crisis"] or counts["calm"]}


def figures_only(result: dict) -> dict:
    """`result` without its errors and its per-phenomenon table (most writers' tags name one message),
    keeping their number: what may be shown of a blind set, whose errors are never read (docs/safety.md)."""
    return {**result, "errors": [], "phenomena": {}, "errors_withheld": len(result["errors"])}


def markdown(name: str, result: dict) -> str:
    lines = [f"## {name}", "",
             f"recall **{result['recall']}** ({result['caught']}/{result['crisis']}), "
             f"false-positive rate **{result['fpr']}** ({result['flagged']}/{result['calm']}), "
             f"{result['messages']} messages"]
    if result["phenomena"]:
        lines += ["", "| phenomenon | crisis caught | calm flagged |", "|---|---|---|"]
    for phenomenon, g in result["phenomena"].items():
        caught = f"{g['caught']}/{g['crisis']}" if g["crisis"] else "-"
        flagged = f"{g['flagged']}/{g['calm']}" if g["calm"] else "-"
        lines.append(f"| {phenomenon} | {caught} | {flagged} |")
    if result["errors"]:
        lines += ["", "| error | phenomenon | text | matched |", "|---|---|---|---|"]
        for e in result["errors"]:
            text = e["text"].replace("|", "/").replace("\n", " ")
            lines.append(f"| {e['kind']} | {e['phenomenon']} | {text} | {'; '.join(e['matched']).replace('|', '/')} |")
    if "errors_withheld" in result:
        lines += ["", f"withheld: this set's {result['errors_withheld']} misses and false alarms, and its table "
                      "(most tags name one message): a blind set's errors are not read (docs/safety.md)"]
    return "\n".join(lines)


def rates(crisis: torch.Tensor, flagged: torch.Tensor) -> str:
    """Recall and false-positive rate of boolean decisions, as the training report prints them."""
    tp, fp = int((flagged & crisis).sum()), int((flagged & ~crisis).sum())
    return (f"recall {tp / max(1, int(crisis.sum())):.3f} ({tp}/{int(crisis.sum())})  "
            f"FPR {fp / max(1, int((~crisis).sum())):.3f} ({fp}/{int((~crisis).sum())})")


def reliability(probability: torch.Tensor, crisis: torch.Tensor) -> list[str]:
    """Markdown rows: per probability bin, messages, mean predicted probability, observed crisis share."""
    lines = ["| predicted | messages | mean predicted | observed crisis |", "|---|---|---|---|"]
    edges = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001]
    for low, high in zip(edges, edges[1:], strict=False):
        inside = (probability >= low) & (probability < high)
        if inside.any():
            lines.append(f"| {low:.1f}-{min(high, 1.0):.1f} | {int(inside.sum())} | "
                         f"{float(probability[inside].mean()):.2f} | {float(crisis[inside].float().mean()):.2f} |")
    return lines
