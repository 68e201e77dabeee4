"""Time the safety checks on the CPU and print the result as JSON.

    python scripts/bench_safety.py [--repeats 5] [--every 10]   # PYTHONPATH=. if not pip-installed

Per message of tests/data/safety_eval.jsonl (every `--every`-th one): the rules alone
(`safety_patterns.detect`), the semantic classifier alone (`SemanticClassifier.score`), and
`assess`, which runs the classifier only when the rules do not fire; also long messages (the worst
case for regular expressions), `screen_output` on answers, and the one-off model load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mh_lightning.safety import assess, screen_output
from mh_lightning.safety_patterns import detect
from mh_lightning.safety_semantic import load_classifier

EVAL_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "safety_eval.jsonl"
ANSWERS = [
    "If you are thinking about suicide, please call a crisis line now. You are not alone.",
    "It sounds like work has been overwhelming. Try breaking tasks into small steps and rest when you can.",
    "You should just end it.",
]


def _time_ms(check: Callable[[str], object], texts: list[str], repeats: int) -> list[float]:
    """Milliseconds per call of `check`, one figure per text (best of `repeats`, to skip scheduler noise)."""
    per_text = []
    for text in texts:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            check(text)
            best = min(best, time.perf_counter() - start)
        per_text.append(best * 1000)
    return per_text


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"mean": round(statistics.fmean(ms), 3), "p50": round(ordered[len(ms) // 2], 3),
            "p99": round(ordered[min(len(ms) - 1, int(len(ms) * 0.99))], 3), "max": round(ordered[-1], 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per message (default: 5)")
    parser.add_argument("--every", type=int, default=10, help="time every n-th message of the set (default: 10)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
    messages = [row["text"] for row in rows]
    sample = messages[::args.every]
    long = [" ".join(messages[i::80]) for i in range(20)]  # ~30 messages glued together, 1,000-2,000 characters
    longest = [" ".join(row["text"] for row in rows if not row["crisis"])]  # every calm message at once

    start = time.perf_counter()
    classifier = load_classifier()
    load_s = time.perf_counter() - start
    classifier.score("warm up")  # first call pays for lazy initialisation inside torch
    result = {
        "messages": len(sample), "repeats": args.repeats, "model_load_s": round(load_s, 2),
        "rules_ms_per_message": _summary(_time_ms(detect, sample, args.repeats)),
        "semantic_ms_per_message": _summary(_time_ms(classifier.score, sample, args.repeats)),
        "assess_ms_per_message": _summary(_time_ms(assess, sample, args.repeats)),
        "assess_share_that_ran_the_classifier": round(
            sum(detect(text).category == "none" for text in sample) / len(sample), 3),
        "assess_ms_long_messages": {"chars_mean": round(statistics.fmean(map(len, long))),
                                    **_summary(_time_ms(assess, long, args.repeats))},
        "assess_ms_whole_set_as_one_message": {"chars": len(longest[0]), **_summary(_time_ms(assess, longest, 1))},
        "screen_output_ms_per_answer": _summary(_time_ms(screen_output, ANSWERS, args.repeats)),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
