"""Resuming: after a crash or a SIGKILL a run continues from its newest checkpoint and ends
where an uninterrupted run would have, batch for batch and weight for weight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY_CONFIG, fit_args

from mh_lightning.checkpoint import read_checkpoint
from mh_lightning.fit import cli_main, main
from mh_lightning.module import FalconLoRAModule
from mh_lightning.resume import newest_complete_checkpoint

pytestmark = pytest.mark.slow  # several training runs

# Two epochs of three batches, one validation batch, dropout on: the resumed run must restore
# the optimizer, schedule, sampler epoch, position in the epoch and the dropout RNG.
RUN = ("--samples.num_questions", "0", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3",
       "--trainer.limit_val_batches", "1", "--step_checkpoint.every_n_train_steps", "2")
REAL_STEP = FalconLoRAModule.training_step
Batch = tuple[int, int, int]  # (epoch, batch index, a fingerprint of the batch's tokens)


class Recorder:
    """Patches training_step to record each batch, optionally crashing at one (epoch, batch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, crash_at: tuple[int, int] | None = None) -> None:
        self.seen: list[Batch] = []

        def recording(module, batch, batch_idx):
            if (module.current_epoch, batch_idx) == crash_at:
                raise RuntimeError("simulated crash")
            ids = batch["input_ids"]
            fingerprint = int((ids * torch.arange(ids.numel()).view_as(ids)).sum())  # order-sensitive
            self.seen.append((module.current_epoch, batch_idx, fingerprint))
            return REAL_STEP(module, batch, batch_idx)

        monkeypatch.setattr(FalconLoRAModule, "training_step", recording)


def adapters(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys() and a
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], list[Batch]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        recorder = Recorder(monkeypatch)
        root = tmp_path_factory.mktemp("uninterrupted")
        cli_main(fit_args(root, *RUN))
    return adapters(root / "checkpoints" / "last.ckpt"), recorder.seen


def crash_then_resume(root: Path, monkeypatch: pytest.MonkeyPatch, crash_at: tuple[int, int],
                      *extra: str) -> tuple[int, list[Batch]]:
    """(the step the crash left a checkpoint at, the batches trained before and after it)."""
    crashed = Recorder(monkeypatch, crash_at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli_main(fit_args(root, *RUN, *extra))
    resumed_from = read_checkpoint(newest_complete_checkpoint([root / "checkpoints"]))["global_step"]
    resumed = Recorder(monkeypatch)
    cli_main(fit_args(root, *RUN, *extra, "--ckpt_path", "last"))
    return resumed_from, crashed.seen + resumed.seen


# Resumed against uninterrupted adapters. Both runs do the same float32 operations on the same
# values (docs/reliability.md: bitsandbytes' CPU repacking had made them differ), so they agree
# bit for bit where the CPU's matmul kernels are deterministic (measured: 0.0 on the Intel Xeon
# with AVX512_BF16). The bound allows for a BLAS that orders a sum differently from one call to
# the next (MKL may, by buffer alignment): a gradient then moves by ~n * 2**-24 relative (n <= 512
# terms: 3e-5), Adam's update by about lr times that (lr 3e-3: 1e-7 a step), 6 steps: < 1e-6.
RESUME_BOUND = 1e-6


def test_resume_at_an_epoch_boundary_matches_the_uninterrupted_run(tmp_path, monkeypatch, uninterrupted):
    weights, batches = uninterrupted
    # Crashing on the first batch of epoch 1 leaves last.ckpt from the end of epoch 0.
    resumed_from, seen = crash_then_resume(tmp_path, monkeypatch, crash_at=(1, 0))
    assert resumed_from == 3
    assert seen == batches
    assert max_difference(adapters(tmp_path / "checkpoints" / "last.ckpt"), weights) <= RESUME_BOUND


def test_resume_mid_epoch_neither_repeats_nor_skips_batches(tmp_path, monkeypatch, uninterrupted):
    """With a loader worker, which reads the sampler when its iterator is made: Lightning makes
    it before restoring the checkpoint, so without the fix epoch 1 would resume in epoch 0's
    order and without the skip."""
    weights, batches = uninterrupted
    # Crashing on batch 1 of epoch 1 leaves step4.ckpt and last.ckpt, written right after batch 0
    # of epoch 1: the resumed run must go on with batch 1, in the order of epoch 1.
    resumed_from, seen = crash_then_resume(tmp_path, monkeypatch, (1, 1), "--data.num_workers", "1")
    assert resumed_from == 4
    assert [(e, b) for e, b, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert seen == batches
    assert max_difference(adapters(tmp_path / "checkpoints" / "last.ckpt"), weights) <= RESUME_BOUND


def test_sigkill_during_fit_resumes_from_the_newest_checkpoint(tmp_path, monkeypatch):
    max_steps = 12
    args = fit_args(tmp_path, "--samples.num_questions", "0", "--trainer.limit_val_batches", "0",
                    "--trainer.max_steps", str(max_steps), "--step_checkpoint.every_n_train_steps", "2")
    first = tmp_path / "checkpoints" / "step2.ckpt"
    log = (tmp_path / "fit.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "mh_lightning.fit", *args], cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 300
        while not first.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        tail = (tmp_path / "fit.log").read_text()[-2000:]
        assert process.poll() is None, f"fit ended before it could be killed: {tail}"
        assert first.exists(), "no step checkpoint within the time limit"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL
    newest = newest_complete_checkpoint([tmp_path / "checkpoints"])  # what --ckpt_path last picks
    killed_at = read_checkpoint(newest)["global_step"]
    assert 2 <= killed_at < max_steps

    resumed = Recorder(monkeypatch)
    cli_main([*args, "--ckpt_path", "last"])
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == max_steps
    assert len(resumed.seen) == max_steps - killed_at  # it went on from there, not from the start


# The README's quick start, shortened: its checkpoints go to runs/tiny_cpu/checkpoints under the
# working folder. Three batches, then one validation batch, so each run writes a best file too.
QUICK_START = ("fit", "--config", str(TINY_CONFIG), "--samples.num_questions", "0", "--trainer.max_epochs", "1",
               "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
               "--trainer.enable_model_summary", "false", "--step_checkpoint.every_n_train_steps", "0")


@pytest.mark.slow
def test_rerunning_the_quick_start_keeps_the_first_runs_checkpoints(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = (tmp_path / "runs" / "tiny_cpu" / "checkpoints").resolve()
    assert main([*QUICK_START, "--trainer.limit_train_batches", "3"]) == 0
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(first)[-1] == "last.ckpt" and len(first) == 2 and sorted(first)[0].startswith("epoch0-step3-")
    capsys.readouterr()

    assert main([*QUICK_START, "--trainer.limit_train_batches", "3"]) == 2  # a second run, unasked: refused
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {folder} holds the checkpoints of an earlier run ({', '.join(sorted(first))}): resume it with "
        "--ckpt_path last, or give --overwrite true to delete them and start over.")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    assert [p.name for p in (tmp_path / "runs" / "tiny_cpu" / "lightning_logs").iterdir()] == ["version_0"]

    # Asked to start over, the new run replaces them all: no old best file stays beside its own.
    assert main([*QUICK_START, "--trainer.limit_train_batches", "2", "--overwrite", "true"]) == 0
    second = sorted(p.name for p in folder.iterdir())
    assert len(second) == 2 and second[0].startswith("epoch0-step2-") and second[1] == "last.ckpt"
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == 2
