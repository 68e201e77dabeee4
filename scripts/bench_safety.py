"""Time the safety checks on one CPU thread and print the result as JSON.

    python scripts/bench_safety.py [--repeats 3] [--every 10] [--backend torch]   # PYTHONPATH=. if not pip-installed

Per message of tests/data/safety_eval.jsonl (every `--every`-th one): the rules alone (`detect`),
`assess` (rules + one batched forward of the classifier over the message's pieces), `assess` with
two earlier turns (the chat case), long messages (read in many chunks), `screen_output` on answers,
and the cold start (import and model load, in a fresh process). Timings are interleaved: each round
runs every check once on every message, so a burst of load on a shared machine hits all of them
alike; the load average is reported with the figures, and so is the classifier's backend
(onnxruntime where it is installed, else torch; `--backend` picks one, cold start included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mh_lightning.safety import assess, detect, load_classifier, screen_output
from mh_lightning.safety.classifier import BACKEND_ENV

REPO = Path(__file__).resolve().parents[1]
EVAL_SET = REPO / "tests" / "data" / "safety_eval.jsonl"
ANSWERS = [
    "If you are thinking about suicide, please call a crisis line now. You are not alone.",
    "It sounds like work has been overwhelming. Try breaking tasks into small steps and rest when you can.",
    "You should just end it.",
]
COLD = ("import time; t = time.perf_counter(); from mh_lightning.safety import assess; assess('hello'); "
        "print(time.perf_counter() - t)")


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"n": len(ms), "mean": round(statistics.fmean(ms), 2), "p50": round(ordered[len(ms) // 2], 2),
            "p99": round(ordered[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max": round(ordered[-1], 2)}


def interleaved(checks: dict[str, tuple[Callable[[str], object], list[str]]], repeats: int) -> dict[str, dict]:
    """Per check, per input: the best of `repeats` rounds in milliseconds (rounds alternate the checks)."""
    best = {name: [float("inf")] * len(texts) for name, (_, texts) in checks.items()}
    for _ in range(repeats):
        for name, (check, texts) in checks.items():
            for i, text in enumerate(texts):
                start = time.perf_counter()
                check(text)
                best[name][i] = min(best[name][i], (time.perf_counter() - start) * 1000)
    return {name: _summary(ms) for name, ms in best.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per message (default: 3)")
    parser.add_argument("--every", type=int, default=10, help="time every n-th message of the set (default: 10)")
    parser.add_argument("--backend", choices=("onnxruntime", "torch"),
                        help="the classifier's forward (default: onnxruntime where it is installed)")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ[BACKEND_ENV] = args.backend  # read at load, here and in the cold-start processes
    torch.set_num_threads(1)
    rows = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
    sample = [row["text"] for row in rows][::args.every]
    long = [" ".join(row["text"] for row in rows[i::80]) for i in range(10)]  # ~36 messages glued together
    earlier = ["I have had a long week at work.", "My sister visited on Sunday."]
    cold = [float(subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)}).stdout) for _ in range(2)]
    classifier = load_classifier()
    classifier.probabilities(["warm up"])  # the first call pays for lazy initialisation inside the runtime
    result = {
        "backend": classifier.backend, "messages": len(sample), "repeats": args.repeats,
        "load_average_before": os.getloadavg(),
        "cold_start_s": round(min(cold), 2),
        **interleaved({
            "rules_ms": (detect, sample),
            "assess_ms": (assess, sample),
            "assess_with_two_earlier_turns_ms": (lambda text: assess(text, earlier), sample),
            "assess_long_messages_ms": (assess, long),
            "screen_output_ms": (screen_output, ANSWERS),
        }, args.repeats),
        "long_messages_chars_mean": round(statistics.fmean(map(len, long))),
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
