"""Where one training micro-batch spends its time: torch.profiler over forward + backward.

    python scripts/profile_step.py --config configs/falcon7b_qlora.yaml --config configs/bench_cpu_20m.yaml \\
        --data.path DATA.parquet --repeats 3 [--top 25]

Builds the project's default module and data exactly as `python -m mh_lightning.fit fit` would
(every argument it does not know goes to the training CLI), takes the first micro-batch of the
first epoch, runs it once to warm up, then `--repeats` forward + backward passes under the
profiler. Prints the operators by self time, then the shares of the groups the speed work is
about (attention, 4-bit dequantization and matmuls, LoRA dropout, LM head + cross-entropy), as
shares of the profiled self time: on a machine shared with other jobs, shares move far less
than seconds do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# Operator names (substrings of the profiler's keys) that make up each group.
GROUPS = {
    "attention (SDPA, fwd+bwd)": ("scaled_dot_product", "_flash_attention", "_efficient_attention"),
    "4-bit dequantization": ("dequantize", "bitsandbytes"),
    "matmul (base, LoRA, LM head)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
    "dropout masks (bernoulli)": ("bernoulli", "aten::dropout", "native_dropout"),
    "softmax / cross-entropy": ("log_softmax", "nll_loss", "cross_entropy", "_softmax", "logsumexp", "aten::exp"),
    "copies and casts": ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous"),
    "elementwise (add, mul, gelu, layer norm)": ("aten::add", "aten::mul", "gelu", "layer_norm", "aten::div"),
}


def first_batch(cli: Any) -> dict[str, torch.Tensor]:
    data = cli.datamodule
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def profile(cli_args: list[str], repeats: int) -> tuple[Any, dict[str, Any]]:
    from mh_lightning.fit import cli_main

    cli = cli_main(cli_args, run=False)
    module = cli.model
    module.build("cpu")
    module.model.train()
    batch = first_batch(cli)

    def step() -> None:
        module.step(batch).backward()

    step()  # warm-up: allocator, kernels chosen, lazy inits
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    rows, width = batch["input_ids"].shape
    info = {"rows": rows, "width": width, "tokens": int(batch.get("num_tokens", batch["input_ids"].numel())),
            "labelled": int((batch["labels"] != -100).sum()), "repeats": repeats,
            "threads": torch.get_num_threads()}
    return prof, info


def group_shares(prof: Any) -> dict[str, float]:
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {}
    for group, names in GROUPS.items():
        spent = sum(e.self_cpu_time_total for e in events if any(n in e.key for n in names))
        shares[group] = round(spent / total, 3)
    shares["total self CPU s"] = round(total / 1e6, 3)
    return shares


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="profiled forward + backward passes")
    parser.add_argument("--top", type=int, default=25, help="operators shown")
    parser.add_argument("--trace", help="also write a Chrome trace here")
    args, cli_args = parser.parse_known_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        prof, info = profile(cli_args, args.repeats)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    print(json.dumps({**info, **group_shares(prof)}))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
