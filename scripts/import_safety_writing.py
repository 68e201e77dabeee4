"""Copy labelled messages written for this project into tests/data/, deduplicated and split by session.

    python scripts/import_safety_writing.py --messages DIR [DIR ...] --outputs DIR

Each DIR holds JSONL files. Messages: text, crisis (bool), category, informational (bool),
phenomenon, session; optional context (the user's earlier turns of a conversation, oldest first:
the row is labelled at its last turn). Outputs (model-like answers): text, unsafe (bool), kind,
session; split by file (per writer, every 4th file from the last is holdout).

Splits: whole writing sessions go to `holdout` or `calib`, never to `train`. A session already in
tests/data/safety_written.jsonl keeps its split (a holdout session never becomes training data);
new sessions, in sorted order: every 5th from the first is holdout, every 5th from the fourth is
calib. Duplicates: two rows whose normalised text (`mh_lightning.safety.model_input`) is the same
are one row; the copy kept is, in order, the project set's holdout, written holdout, written calib,
the project set's dev, written train. The project set (tests/data/safety_eval.jsonl) is rewritten
without the copies it loses. Run it again when more files arrive: the result depends only on the
files and the splits already given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mh_lightning.safety.classifier import CATEGORIES, model_input

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
EVAL_SET, WRITTEN, OUTPUTS = DATA / "safety_eval.jsonl", DATA / "safety_written.jsonl", DATA / "safety_outputs.jsonl"
MESSAGE_FIELDS = ("text", "crisis", "category", "informational", "phenomenon", "session", "context")
OUTPUT_FIELDS = ("text", "unsafe", "kind", "session", "part")


def read_dir(folder: Path, fields: tuple[str, ...], flag: str) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SystemExit(f"{path}:{i}: not JSON ({err})") from None
            if not isinstance(row.get("text"), str) or not isinstance(row.get(flag), bool) or not row.get("session"):
                raise SystemExit(f"{path}:{i}: needs text (string), {flag} (true/false) and session")
            if flag == "crisis" and row["crisis"] and row.get("category") not in CATEGORIES:
                raise SystemExit(f"{path}:{i}: a crisis row needs category in {CATEGORIES}")
            context = row.get("context")
            if context is not None and (not isinstance(context, list) or not all(isinstance(t, str) for t in context)):
                raise SystemExit(f"{path}:{i}: context must be a list of earlier user turns (strings), oldest first")
            found = {k: row.get(k, path.stem) if k == "part" else row.get(k) for k in fields}
            if "context" in found and not context:
                del found["context"]  # a single message: no earlier turns
            rows.append(found)
    return rows


def session_splits(sessions: set[str], known: dict[str, str]) -> dict[str, str]:
    """`known` splits stay; the new sessions are dealt out in sorted order."""
    new = sorted(sessions - set(known))
    dealt = {s: "holdout" if i % 5 == 0 else "calib" if i % 5 == 3 else "train" for i, s in enumerate(new)}
    return {s: known.get(s) or dealt[s] for s in sessions}


def known_splits() -> dict[str, str]:
    """The split of every session in tests/data/safety_written.jsonl (empty before the first import)."""
    if not WRITTEN.exists():
        return {}
    rows = [json.loads(line) for line in WRITTEN.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["session"]: row["split"] for row in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=Path, nargs="*", default=[], help="folders of labelled user messages")
    parser.add_argument("--outputs", type=Path, nargs="*", default=[], help="folders of labelled model answers")
    args = parser.parse_args(argv)

    project = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
    written = [row for folder in args.messages for row in read_dir(folder, MESSAGE_FIELDS, "crisis")]
    split_of = session_splits({row["session"] for row in written}, known_splits())
    for row in written:
        row["split"] = split_of[row["session"]]
        row["category"] = row["category"] if row["crisis"] else "none"
        row["informational"] = bool(row.get("informational"))
    rank = {("project", "holdout"): 0, ("written", "holdout"): 1, ("written", "calib"): 2, ("project", "dev"): 3,
            ("written", "train"): 4}
    tagged = [("project", row) for row in project] + [("written", row) for row in written]
    kept: dict[str, tuple[int, int]] = {}
    for n, (source, row) in enumerate(tagged):
        key, order = model_input(" ".join([*row.get("context", ()), row["text"]])), rank[(source, row["split"])]
        if key not in kept or order < kept[key][0]:
            kept[key] = (order, n)
    survivors = {n for _, n in kept.values()}
    project_kept = [row for n, (_, row) in enumerate(tagged[:len(project)]) if n in survivors]
    written_kept = [row for n, (_, row) in enumerate(tagged) if n >= len(project) and n in survivors]
    EVAL_SET.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in project_kept), encoding="utf-8")
    if args.messages:
        WRITTEN.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in written_kept), encoding="utf-8")
    print(f"project set: {len(project_kept)} of {len(project)} rows kept; written: {len(written_kept)} of "
          f"{len(written)} kept; sessions: {json.dumps(split_of)}")

    if args.outputs:
        answers, seen = [], set()
        for row in (row for folder in args.outputs for row in read_dir(folder, OUTPUT_FIELDS, "unsafe")):
            if model_input(row["text"]) not in seen:
                seen.add(model_input(row["text"]))
                answers.append(row)
        # per writer (the session name before "-s"): whole files, every 4th from the last is holdout
        holdout, writer = set(), lambda row: row["session"].split("-s")[0]
        for name in sorted({writer(row) for row in answers}):
            parts = sorted({(row["session"], row["part"]) for row in answers if writer(row) == name})
            holdout |= {parts[i] for i in range(len(parts) - 1, -1, -4)}
        for row in answers:
            row["split"] = "holdout" if (row["session"], row["part"]) in holdout else "train"
        OUTPUTS.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in answers), encoding="utf-8")
        print(f"outputs: {len(answers)} answers ({sum(r['unsafe'] for r in answers)} unsafe)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
