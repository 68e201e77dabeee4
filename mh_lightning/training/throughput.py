"""How fast training goes, in tokens that matter: a Lightning callback.

Per optimizer step, `ThroughputMonitor` logs

- `train/trained_tokens_per_s`: tokens of real conversations (prompt, answer and EOS; no
  padding) per second,
- `train/processed_tokens_per_s`: every token the model ran on, padding included,
- `train/padding_efficiency`: trained / processed tokens,
- `train/seconds_per_step`, `perf/peak_host_mb` (peak RSS of this process) and
  `perf/peak_gpu_mb` (peak allocated CUDA memory; absent on the CPU).

It adds no host sync: token counts stay on the device until the logger reads them, and
step times are taken on the host (on a GPU, a step's time is then the host's view of it,
which averages out over steps). `summary` syncs once, at the end of a measured window, and
is what `scripts/benchmark.py` prints.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning.pytorch as pl
import torch


def batch_token_counts(batch: dict[str, Any]) -> tuple[torch.Tensor | int, int]:
    """(non-padding tokens, all tokens) of a padded or packed batch; no host sync."""
    processed = batch["input_ids"].numel()
    if "num_tokens" in batch:  # packed batches count their conversations' tokens
        return batch["num_tokens"], processed
    mask = batch.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        return mask.sum(), processed
    return processed, processed


def peak_host_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def peak_gpu_mb(device: torch.device | None = None) -> float | None:
    """Peak CUDA memory allocated by tensors since the last reset, in MiB; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def window_summary(steps: int, trained: float, processed: float, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """The figures of a measured window of optimizer steps (what the benchmark scripts print)."""
    gpu = peak_gpu_mb()
    return {
        "steps": steps,
        "trained_tokens": int(trained),
        "processed_tokens": int(processed),
        "seconds": seconds,
        "trained_tokens_per_s": trained / seconds,
        "processed_tokens_per_s": processed / seconds,
        "padding_efficiency": trained / processed,
        "seconds_per_step": seconds / steps,
        # CPU time of the process (all its threads): on a shared machine it moves far less
        # than wall time with the other processes' load.
        "cpu_seconds": cpu_seconds,
        "trained_tokens_per_cpu_s": trained / cpu_seconds,
        "peak_host_mb": peak_host_mb(),
        "peak_gpu_mb": gpu,
        "peak_gpu_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if gpu is not None else None,
    }


class ThroughputMonitor(pl.Callback):
    def __init__(self, warmup_steps: int = 1) -> None:
        """Log tokens/s, padding efficiency, seconds/step and peak memory at each optimizer step.

        Args:
            warmup_steps: optimizer steps left out of `summary` (first-step allocation,
                kernel selection and caches make them slower than the rest).
        """
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self._reset()

    def _reset(self) -> None:
        self._step_trained: torch.Tensor | int = 0
        self._step_processed = 0
        self._step_start: float | None = None
        self._last_step = 0
        self._window_trained: torch.Tensor | int = 0
        self._window_processed = 0
        self._window_steps = 0
        self._window_start: float | None = None
        self._window_cpu_start = 0.0
        self.summary: dict[str, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._reset()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()  # the model is loaded after setup: counted

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_step = trainer.global_step
        self._step_start = time.perf_counter()
        if self.warmup_steps == 0:
            self._open_window(pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        trained, processed = batch_token_counts(batch)
        self._step_trained = self._step_trained + trained
        self._step_processed += processed

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self._last_step:
            return  # accumulating: the optimizer step is not done yet
        self._last_step = trainer.global_step
        now = time.perf_counter()
        seconds = now - self._step_start
        trained, processed = self._step_trained, self._step_processed
        self._step_trained, self._step_processed, self._step_start = 0, 0, now
        if trainer.global_step > self.warmup_steps:
            self._window_trained = self._window_trained + trained
            self._window_processed += processed
            self._window_steps += 1
        elif trainer.global_step == self.warmup_steps:
            self._step_start = self._open_window(pl_module)
        self._log(pl_module, trained, processed, seconds)

    def _log(self, pl_module: pl.LightningModule, trained: torch.Tensor | int, processed: int,
             seconds: float) -> None:
        trained = torch.as_tensor(trained, dtype=torch.float32)  # stays on its device
        metrics = {
            "train/trained_tokens_per_s": trained / seconds,
            "train/processed_tokens_per_s": processed / seconds,
            "train/padding_efficiency": trained / processed,
            "train/seconds_per_step": seconds,
            "perf/peak_host_mb": peak_host_mb(),
        }
        gpu = peak_gpu_mb(pl_module.device if pl_module.device.type == "cuda" else None)
        if gpu is not None:
            metrics["perf/peak_gpu_mb"] = gpu
        pl_module.log_dict(metrics, on_step=True, on_epoch=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._window_start is None or self._window_steps == 0:
            return  # training ended inside the warm-up: nothing measured
        seconds = self._synced_time(pl_module) - self._window_start
        cpu_seconds = time.process_time() - self._window_cpu_start
        strategy = trainer.strategy
        trained = torch.as_tensor(self._window_trained, dtype=torch.float64, device=pl_module.device)
        processed = torch.tensor(float(self._window_processed), dtype=torch.float64, device=pl_module.device)
        # Under DDP every process trains its own tokens: the throughput is their sum.
        trained = float(strategy.reduce(trained, reduce_op="sum"))
        processed = float(strategy.reduce(processed, reduce_op="sum"))
        self.summary = window_summary(self._window_steps, trained, processed, seconds, cpu_seconds)

    def _open_window(self, pl_module: pl.LightningModule) -> float:
        self._window_start = self._synced_time(pl_module)
        self._window_cpu_start = time.process_time()
        return self._window_start

    @staticmethod
    def _synced_time(pl_module: pl.LightningModule) -> float:
        # Only at the edges of the measured window: the device must have finished its queue.
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()
