"""Measure the crisis detector on labelled messages: recall, false-positive rate, per phenomenon, misses.

    python scripts/eval_safety.py FILE [FILE ...] [--split holdout] [--json OUT]   # PYTHONPATH=. if needed
    python scripts/eval_safety.py --counsel-chat counsel_chat_20200325.csv        # real questions, labelled
    python scripts/eval_safety.py tests/data/blind/blind_a.jsonl                  # figures only (see below)

Each FILE is JSONL with `text` and `crisis` (true/false); optional `phenomenon` (or `kind`) groups
the table, `split` is filtered by --split, and `context` (a list of earlier user turns, oldest
first) is passed to the detector. Prints, per file, a Markdown report (figures, the per-phenomenon
table, every miss and false alarm with what the detector matched) and writes the same as JSON
with --json. --counsel-chat reads the counsel-chat CSV's questions with the labels in
tests/data/counsel_chat_labels.jsonl (an independent labeller's; the CSV itself is not shipped).

The errors of a blind set (a file in a folder named `blind`) and of counsel-chat are withheld, with
the per-phenomenon table (most tags name one message), from the screen and from --json alike, and
only their number printed: a set whose errors have been read no longer measures anything blind
(docs/safety.md, Blind sets). `--errors show` prints them anyway, `--errors hide` withholds them for
every file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mh_lightning.safety.evaluation import counsel_chat, evaluate, figures_only, grouped, markdown, read

COUNSEL_LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "counsel_chat_labels.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="*", help="JSONL files with text and crisis")
    parser.add_argument("--split", help="only rows whose `split` is this (e.g. holdout)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--counsel-chat", type=Path, metavar="CSV",
                        help="also the counsel-chat CSV's questions, with tests/data/counsel_chat_labels.jsonl")
    parser.add_argument("--errors", choices=("auto", "show", "hide"), default="auto",
                        help="list each miss and false alarm (and the per-phenomenon table): auto (the default) "
                             "withholds a blind set's (a file in a folder named blind) and counsel-chat's, show "
                             "lists them for every file, hide for none")
    parser.add_argument("--groups", action="store_true",
                        help="the per-phenomenon table by group of tags (evaluation.GROUPS), and pooled over the "
                             "files when there are several: the tables of docs/safety.md")
    args = parser.parse_args(argv)
    if not args.files and not args.counsel_chat:
        parser.error("give a labelled JSONL file or --counsel-chat CSV")
    sources = [(f"{path}" + (f" ({args.split})" if args.split else ""), lambda path=path: read(path, args.split),
                path.resolve().parent.name == "blind") for path in args.files]
    if args.counsel_chat:
        sources.append((f"{args.counsel_chat} (labels: {COUNSEL_LABELS.name})",
                        lambda: counsel_chat(args.counsel_chat, COUNSEL_LABELS), True))
    results, tags = {}, []  # tags: the per-tag tables of the files whose table is shown, for --groups
    for name, load, blind in sources:
        try:
            rows = load()
        except (OSError, ValueError) as err:
            parser.error(str(err))
        result = evaluate(rows)
        if args.errors == "hide" or (args.errors == "auto" and blind):
            result = figures_only(result)
        elif args.groups:
            tags.append(result["phenomena"])
            result = {**result, "phenomena": grouped(result["phenomena"])}
        results[name] = result
        print(markdown(name, result) + ("; --errors show lists them" if "errors_withheld" in result else "") + "\n")
    if len(tags) > 1:
        shown = [r for r in results.values() if r["phenomena"]]
        pooled = {**_totals(shown), "phenomena": grouped(*tags), "errors": []}
        print(markdown(f"{len(tags)} files pooled", pooled) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({name: {k: r[k] for k in ("messages", "recall", "fpr", "caught", "crisis", "flagged", "calm")}
                      for name, r in results.items()}))
    return 0


def _totals(results: list[dict]) -> dict:
    total = {k: sum(r[k] for r in results) for k in ("messages", "crisis", "caught", "calm", "flagged")}
    return {**total, "recall": round(total["caught"] / total["crisis"], 4) if total["crisis"] else None,
            "fpr": round(total["flagged"] / total["calm"], 4) if total["calm"] else None}


if __name__ == "__main__":
    sys.exit(main())
