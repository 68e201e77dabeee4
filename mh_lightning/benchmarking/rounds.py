"""The CPU comparison of docs/benchmarks.md in one run: the project, the HF recipe and TRL, interleaved.

    python scripts/bench_rounds.py --rounds 3 --out bench.jsonl \\
        --data ../shared/data/mental_health_chatbot_dataset.parquet --model models/falcon-20m

Each round runs, each in its own process and one after the other: the project's default
(scripts/benchmark.py), the HF Trainer recipe with random and with length-grouped batches
(scripts/hf_trainer_baseline.py), and TRL's SFTTrainer padded, packed (bfd) and padding-free
(scripts/trl_baseline.py). Every run trains one whole epoch of warm-up, then measures one whole
epoch (`--epochs`). Rounds rotate the order, so no run always goes first or last. Before and
after each run the load averages (`/proc/loadavg`, what `uptime` prints) are recorded: a run
with a load above the machine's core count did not have the machine to itself.

Writes one JSON line per run to `--out` (the script's own line plus `round`, `run`,
`load_before`, `load_after`), prints them, then a summary: trained tokens/s per run and round,
the medians, and the ratios of the project's default to each other run, with the issue's
targets. `--smoke` runs one measured step per run (no warm-up): a check that every command
works, not a measurement. `--dry_run` prints the commands and exits.

Expected time on the 2-core development machine, quiet: about 15 minutes a round (the HF recipe
with random batches alone takes over 3 minutes), 45 minutes for 3 rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # the checkout: its scripts, configs and models/
SCRIPTS = REPO / "scripts"
CONFIGS = ["--config", str(REPO / "configs" / "falcon7b_qlora.yaml"),
           "--config", str(REPO / "configs" / "bench_cpu_20m.yaml")]
# name: (script, extra arguments, measured in optimizer steps (True) or in epochs by the script (False))
RUNS: dict[str, tuple[str, list[str], bool]] = {
    "ours_default": ("benchmark.py", [], True),
    "hf_random": ("hf_trainer_baseline.py", [], True),
    "hf_grouped": ("hf_trainer_baseline.py", ["--group_by_length"], True),
    "trl_default": ("trl_baseline.py", ["--mode", "default"], False),
    "trl_packing": ("trl_baseline.py", ["--mode", "packing"], False),
    "trl_padding_free": ("trl_baseline.py", ["--mode", "padding_free"], False),
    # not run unless named in --runs: bf16 autocast on the CPU (AMX), a numerics change on both sides
    "ours_bf16": ("benchmark.py", ["--trainer.precision", "bf16-mixed", "--model.compute_dtype", "bfloat16"], True),
    "trl_packing_bf16": ("trl_baseline.py", ["--mode", "packing", "--bf16"], False),
}
DEFAULT_RUNS = list(RUNS)[:6]
TARGETS = {"hf_random": 2.0, "hf_grouped": 1.5, "trl_best": 1.5}  # issue 15: ours / run, trained tokens/s
TRL_RUNS = ("trl_default", "trl_packing", "trl_padding_free", "trl_packing_bf16")


def load_averages() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def epoch_steps(common: list[str]) -> int:
    """Optimizer steps in one epoch of the project's batches (the recipe's too: the same sampler size)."""
    from mh_lightning.training.cli import cli_main

    cli = cli_main(common, run=False)
    cli.datamodule.setup("fit")
    micro_batches = len(cli.datamodule.train_dataloader())
    return math.ceil(micro_batches / cli.trainer.accumulate_grad_batches)


def command(name: str, common: list[str], steps: int, epochs: int, smoke: bool) -> list[str]:
    script, extra, in_steps = RUNS[name]
    if smoke:
        window = ["--warmup_steps", "0", "--steps", "1"]
    elif in_steps:
        window = ["--warmup_steps", str(steps), "--steps", str(epochs * steps)]
    else:  # TRL's packing changes the steps per epoch: the script counts them
        window = ["--epochs", str(epochs)]
    return [sys.executable, str(SCRIPTS / script), *common, *extra, *window]


def run_one(cmd: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(cmd)}\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratios(by_run: dict[str, float]) -> dict[str, float]:
    ours = by_run.get("ours_default")
    found = {name: ours / value for name, value in by_run.items() if name != "ours_default" and ours and value}
    trl = [by_run[n] for n in TRL_RUNS if by_run.get(n)]
    if ours and trl:
        found["trl_best"] = ours / max(trl)
    return found


def summary(results: list[dict[str, Any]], names: list[str]) -> str:
    rounds = sorted({r["round"] for r in results})
    lines = ["", "trained tokens/s, wall (per CPU-second); load averages (1 min) before -> after each run", ""]
    lines.append("| run | " + " | ".join(f"round {r}" for r in rounds) + " | median |")
    lines.append("|---|" + "---|" * (len(rounds) + 1))
    medians: dict[str, float] = {}
    for name in names:
        cells, walls = [], []
        for r in rounds:
            row = next((x for x in results if x["round"] == r and x["run"] == name), None)
            if row is None:
                cells.append("")
                continue
            walls.append(row["trained_tokens_per_s"])
            cells.append(f"{row['trained_tokens_per_s']:.0f} ({row['trained_tokens_per_cpu_s']:.0f}); "
                         f"load {row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f}")
        medians[name] = statistics.median(walls) if walls else 0.0
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {medians[name]:.0f} |")
    lines += ["", "| ours_default / run | " + " | ".join(f"round {r}" for r in rounds) + " | median | target |",
              "|---|" + "---|" * (len(rounds) + 2)]
    per_round = [ratios({x["run"]: x["trained_tokens_per_s"] for x in results if x["round"] == r}) for r in rounds]
    for name in [*[n for n in names if n != "ours_default"], "trl_best"]:
        values = [f"{rr[name]:.2f}x" if name in rr else "" for rr in per_round]
        median = ratios(medians).get(name)
        target = f">= {TARGETS[name]}x" if name in TARGETS else ""
        lines.append(f"| {name} | " + " | ".join(values) + f" | {median:.2f}x | {target} |" if median
                     else f"| {name} | " + " | ".join(values) + f" | | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="bench.jsonl", help="JSON lines, appended")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"
                                              / "mental_health_chatbot_dataset.parquet"))
    parser.add_argument("--model", default=str(REPO / "models" / "falcon-20m"), help="built with: "
                        "python -m mh_lightning.tiny --preset falcon-20m --corpus DATA --out DIR")
    parser.add_argument("--epochs", type=int, default=1, help="measured whole epochs per run (after one of warm-up)")
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                        help=f"comma-separated, from {', '.join(RUNS)} (default: the first six)")
    parser.add_argument("--smoke", action="store_true", help="one measured step per run: checks, not numbers")
    parser.add_argument("--dry_run", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown {unknown}; choose from {', '.join(RUNS)}")
    if args.rounds < 1 or args.epochs < 1:
        parser.error("--rounds and --epochs must be >= 1")
    if not args.dry_run and not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there; build it with "
                     f"`python -m mh_lightning.tiny --preset falcon-20m --corpus {args.data} --out {args.model}`")
    common = [*CONFIGS, "--data.path", args.data, "--model", args.model]
    steps = 3 if args.dry_run else epoch_steps([*CONFIGS, "--data.path", args.data,
                                                "--model.model_name", args.model])
    if args.dry_run:
        for name in names:
            print(name, shlex.join(command(name, common, steps, args.epochs, args.smoke)))
        return
    results: list[dict[str, Any]] = []
    out = Path(args.out)
    started = time.time()
    for r in range(1, args.rounds + 1):
        shift = (r - 1) % len(names)
        order = names[shift:] + names[:shift]  # rotate: each run takes every place in turn
        print(f"round {r}: {', '.join(order)}; load {load_averages()}", file=sys.stderr, flush=True)
        for name in order:
            before = load_averages()
            result = run_one(command(name, common, steps, args.epochs, args.smoke))
            row = {"round": r, "run": name, "load_before": before, "load_after": load_averages(), **result}
            results.append(row)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
        elapsed = time.time() - started
        print(f"round {r} done after {elapsed / 60:.1f} min; about {elapsed / r * (args.rounds - r) / 60:.0f} "
              "min to go", file=sys.stderr, flush=True)
    print(summary(results, names), flush=True)


if __name__ == "__main__":
    main()
