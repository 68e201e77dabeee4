"""Measure the crisis detector on labelled messages: recall, false-positive rate, per phenomenon, misses.

    python scripts/eval_safety.py FILE [FILE ...] [--split holdout] [--json OUT]   # PYTHONPATH=. if needed
    python scripts/eval_safety.py --counsel-chat counsel_chat_20200325.csv        # real questions, labelled

Each FILE is JSONL with `text` and `crisis` (true/false); optional `phenomenon` (or `kind`) groups
the table, `split` is filtered by --split, and `context` (a list of earlier user turns, oldest
first) is passed to the detector. Prints, per file, a Markdown report (figures, the per-phenomenon
table, every miss and false alarm with what the detector matched) and writes the same as JSON
with --json. --counsel-chat reads the counsel-chat CSV's questions with the labels in
tests/data/counsel_chat_labels.jsonl (an independent labeller's; the CSV itself is not shipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mh_lightning.safety.evaluation import counsel_chat, evaluate, markdown, read

COUNSEL_LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "counsel_chat_labels.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="*", help="JSONL files with text and crisis")
    parser.add_argument("--split", help="only rows whose `split` is this (e.g. holdout)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--counsel-chat", type=Path, metavar="CSV",
                        help="also the counsel-chat CSV's questions, with tests/data/counsel_chat_labels.jsonl")
    args = parser.parse_args(argv)
    if not args.files and not args.counsel_chat:
        parser.error("give a labelled JSONL file or --counsel-chat CSV")
    sources = [(f"{path}" + (f" ({args.split})" if args.split else ""), lambda path=path: read(path, args.split))
               for path in args.files]
    if args.counsel_chat:
        sources.append((f"{args.counsel_chat} (labels: {COUNSEL_LABELS.name})",
                        lambda: counsel_chat(args.counsel_chat, COUNSEL_LABELS)))
    results = {}
    for name, load in sources:
        try:
            rows = load()
        except (OSError, ValueError) as err:
            parser.error(str(err))
        results[name] = evaluate(rows)
        print(markdown(name, results[name]) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({name: {k: r[k] for k in ("messages", "recall", "fpr", "caught", "crisis", "flagged", "calm")}
                      for name, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
