"""What the benchmark commands share: their options, the dry run, the measuring window of the
HF-based trainers, and MFU on a GPU."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import torch

# Dense bf16/fp16 tensor-core peaks from the vendors' datasheets, in TFLOP/s (no sparsity).
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0, "A10G": 125.0}


def device_peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)


def add_mfu(result: dict[str, Any], checkpointing: bool, peak_tflops: float | None = None) -> None:
    """Model FLOPs utilisation of a GPU run, and the peak it divides by."""
    peak = peak_tflops or device_peak_tflops()
    flops_per_token = (6 if checkpointing else 4) * result["params"]  # forward 2N, input grads 2N, recompute 2N
    result["peak_tflops"] = peak
    result["mfu"] = result["trained_tokens_per_s"] * flops_per_token / (peak * 1e12) if peak else None


def check_cli(cli_args: list[str]) -> dict[str, Any]:
    """Parse and validate the training CLI's arguments (configs, keys, types) without building
    anything, as `--print_config` does; the resolved config. What every `--dry_run` checks."""
    import io

    import yaml

    from mh_lightning.training.cli import cli_main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            cli_main([*cli_args, "--print_config"], run=False)
        except SystemExit as done:
            if done.code not in (0, None):
                raise
    return yaml.safe_load(printed.getvalue())


def dry_run_line(script: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a `--dry_run` prints: the settings the run would use."""
    model, data, trainer = config["model"], config["data"], config["trainer"]
    return {"dry_run": True, "script": script, "model": model["model_name"], "accelerator": trainer["accelerator"],
            "precision": trainer["precision"], "quantization": model["quantization"],
            "gradient_checkpointing": model["gradient_checkpointing"],
            "dequantize_once": model.get("dequantize_once", False), "packing": data["packing"],
            "micro_batch": data["batch_size"], "accumulate_grad_batches": trainer["accumulate_grad_batches"],
            "max_length": data["max_length"], **extra}


def base_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark command takes; the arguments it does not know go to the training CLI."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps")
    parser.add_argument("--warmup_steps", type=int, default=1, help="optimizer steps run before measuring")
    parser.add_argument("--model", help="local model folder (sets --model.model_name)")
    parser.add_argument("--dry_run", action="store_true",
                        help="check the arguments and configs, print the settings as JSON, train nothing")
    return parser


def cli_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """(this script's options, the training CLI's arguments)."""
    args, cli_args = parser.parse_known_args(argv)
    if args.steps < 1 or args.warmup_steps < 0:
        parser.error("--steps must be >= 1 and --warmup_steps >= 0")
    if "fit" in cli_args:
        cli_args.remove("fit")  # the benchmarks always train
    if args.model:
        cli_args += ["--model.model_name", args.model]
    return args, cli_args


class Meter:
    """Tokens and time of the optimizer steps after the warm-up, counted as the benchmark does."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.trained: torch.Tensor | int = 0
        self.processed = 0
        self.start: float | None = None
        self.end: float | None = None
        self.cpu_start = self.cpu_end = 0.0
        self.steps = 0

    def count(self, batch: dict[str, Any]) -> None:
        from mh_lightning.training.throughput import batch_token_counts

        trained, processed = batch_token_counts(batch)
        self.trained = self.trained + trained
        self.processed += processed

    def step_done(self, step: int) -> None:
        if step == self.warmup_steps:
            self.start, self.cpu_start, self.trained, self.processed = synced_time(), time.process_time(), 0, 0
        elif step > self.warmup_steps:
            self.steps += 1
            self.end, self.cpu_end = synced_time(), time.process_time()

    def clock(self) -> Any:
        """A transformers `TrainerCallback` that calls `step_done` as each optimizer step ends."""
        from transformers import TrainerCallback

        meter = self

        class StepClock(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                meter.step_done(0)  # with no warm-up, the window opens here

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                meter.step_done(state.global_step)

        return StepClock()

    def summary(self) -> dict[str, Any]:
        """The measured window's figures, keyed as the project's own benchmark reports them."""
        from mh_lightning.training.throughput import window_summary

        return window_summary(self.steps, float(self.trained), self.processed, self.end - self.start,
                              self.cpu_end - self.cpu_start)


def synced_time() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()
