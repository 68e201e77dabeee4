"""Failures say what went wrong, name the key/file/step, and keep the last good state."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import fit_args

from mh_lightning import module as module_module
from mh_lightning.checkpoint import CheckpointError, read_checkpoint
from mh_lightning.data import DataError, load_conversations
from mh_lightning.errors import UsageError
from mh_lightning.faults import NonFiniteLossError, OutOfMemoryHint
from mh_lightning.fit import cli_main, main
from mh_lightning.module import FalconLoRAModule, SettingsError
from mh_lightning.resume import AtomicCheckpointIO, newest_complete_checkpoint

QUICK = ("--samples.num_questions", "0", "--trainer.limit_val_batches", "0")


def quick_args(root: Path, *extra: str) -> list[str]:
    return fit_args(root, *QUICK, *extra)


def adapters(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything loads the base model: config errors must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the base model was loaded before the mistake was reported")

    monkeypatch.setattr(module_module, "build_lora_model", refuse)


# -- non-finite loss and clipping ---------------------------------------------------------
@pytest.mark.slow
def test_nan_loss_stops_naming_step_batch_and_rows_and_saves_the_last_good_state(tmp_path, monkeypatch):
    real_step = FalconLoRAModule.training_step
    poisoned_texts: list[str] = []

    def poisoned(self, batch, batch_idx):
        loss = real_step(self, batch, batch_idx)
        if self.global_step == 1 and batch_idx == 3:  # the second micro-batch of step 1's window
            tokenizer = self.trainer.datamodule.tokenizer
            poisoned_texts.extend(tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True))
            return loss * float("nan")
        return loss

    monkeypatch.setattr(FalconLoRAModule, "training_step", poisoned)
    args = quick_args(tmp_path, "--trainer.max_steps", "2", "--trainer.accumulate_grad_batches", "2",
                      "--step_checkpoint.every_n_train_steps", "1")
    with pytest.raises(NonFiniteLossError) as caught:
        cli_main(args)
    last = tmp_path / "checkpoints" / "last.ckpt"
    message = str(caught.value)
    assert message.startswith("the training loss became NaN at global step 1, in batch 3 of epoch 0 (rows ")
    assert f"the last good state is saved in {last} (resume with --ckpt_path last)" in message
    assert "trainer.gradient_clip_val (now 1.0)" in message
    # The rows it names are the ones in the poisoned batch.
    rows = [int(r) for r in re.search(r"rows ([\d, ]+) of builtin:sample", message).group(1).split(", ")]
    conversations = load_conversations("builtin:sample")
    assert len(rows) == 4 and len(poisoned_texts) == 4
    assert sorted(conversations[r].question for r in rows) == sorted(
        re.search(r"<HUMAN>: (.*)\n<ASSISTANT>:", t, re.S).group(1) for t in poisoned_texts)

    # The last good state: after step 1 (as step1.ckpt), before the poisoned step, progress
    # taken back to the start of its accumulation window (batches 2 and 3).
    saved = read_checkpoint(last)
    assert saved["global_step"] == 1
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress == {"ready": 2, "started": 2, "processed": 2, "completed": 2}
    step1 = adapters(tmp_path / "checkpoints" / "step1.ckpt")
    assert all(torch.equal(saved["state_dict"][k], step1[k]) for k in step1)
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())

    # Resuming replays the whole window, then goes on to the planned step.
    seen: list[int] = []

    def recording(self, batch, batch_idx):
        seen.append(batch_idx)
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(FalconLoRAModule, "training_step", recording)
    cli_main([*args, "--ckpt_path", "last"])
    assert seen == [2, 3]
    assert read_checkpoint(last)["global_step"] == 2


@pytest.mark.slow
def test_gradient_clip_val_is_honoured(tmp_path, monkeypatch):
    norms: list[float] = []
    real_step = FalconLoRAModule.optimizer_step

    def spying(self, *args, **kwargs):
        real_step(self, *args, **kwargs)  # the gradients stay until the next step zeroes them
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norms.append(torch.nn.utils.get_total_norm(grads).item())

    monkeypatch.setattr(FalconLoRAModule, "optimizer_step", spying)
    cli = cli_main(quick_args(tmp_path, "--trainer.max_steps", "2", "--trainer.gradient_clip_val", "0.001"))
    assert type(cli.trainer.strategy.checkpoint_io) is AtomicCheckpointIO  # installed by the CLI's callbacks
    # The unclipped norm of the tiny model is far above 0.001: clipping brings it down to exactly that.
    assert norms == pytest.approx([0.001, 0.001], rel=1e-4)


# -- out of memory --------------------------------------------------------------------------
def test_out_of_memory_names_the_config_keys_to_lower(tmp_path, monkeypatch, capsys):
    def out_of_memory(self, batch, batch_idx):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has 1.2 GiB free")

    monkeypatch.setattr(FalconLoRAModule, "training_step", out_of_memory)
    args = quick_args(tmp_path, "--trainer.max_steps", "1", "--trainer.accumulate_grad_batches", "2")
    with pytest.raises(OutOfMemoryHint) as caught:
        cli_main(args)
    assert str(caught.value) == (
        "the GPU ran out of memory at global step 0 (CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has 1.2 GiB free).\n"
        "Lower the memory one step needs with these config keys:\n"
        "  data.batch_size: 4 -> 2, with trainer.accumulate_grad_batches: 2 -> 4 to keep the same global batch\n"
        "  data.max_length: 256 -> a smaller value (longer examples are cut)\n"
        "  model.gradient_checkpointing: true (now false; recomputes activations: less memory, about 25% slower)\n"
        "  model.optimizer: paged_adamw_8bit (optimizer state in 8 bits, paged to the CPU when needed)"
    )
    assert isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)
    # The command line prints the advice, not a CUDA traceback.
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: the GPU ran out of memory at global step 0" in err and "Traceback" not in err


# -- broken checkpoints ---------------------------------------------------------------------
def broken_copies(good: Path, folder: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00not a checkpoint" * 64}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.ckpt"
        paths[name].write_bytes(content)
    paths["folder"] = folder / "folder.ckpt"
    paths["folder"].mkdir()
    return paths


@pytest.mark.parametrize("kind, reason", [
    ("truncated", "not a readable checkpoint, truncated or corrupt (RuntimeError: PytorchStreamReader failed"),
    ("empty", "the file is empty (0 bytes), its write was cut short"),
    ("garbage", "not a readable checkpoint, truncated or corrupt"),
    ("folder", "a folder, not a checkpoint file"),
])
def test_broken_checkpoint_errors_name_the_file(tiny_checkpoint, tmp_path, kind, reason):
    path = broken_copies(tiny_checkpoint, tmp_path)[kind]
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: {reason}")


def test_fit_from_a_broken_checkpoint_fails_before_the_model_loads(tiny_checkpoint, tmp_path, no_model_load):
    broken = broken_copies(tiny_checkpoint, tmp_path)["truncated"]
    with pytest.raises(CheckpointError, match=re.escape(f"{broken}: not a readable checkpoint, truncated")):
        cli_main(quick_args(tmp_path / "run", "--ckpt_path", str(broken)))


def test_ckpt_path_last_falls_back_to_the_previous_complete_checkpoint(tiny_checkpoint, tmp_path):
    older = tmp_path / "step7.ckpt"
    shutil.copy(tiny_checkpoint, older)
    last = tmp_path / "last.ckpt"
    last.write_bytes(tiny_checkpoint.read_bytes()[:1000])  # newer, but cut short
    with pytest.warns(UserWarning) as warned:
        assert newest_complete_checkpoint([tmp_path]) == older
    message = str(warned[-1].message)
    assert message.startswith(f"skipped 1 unreadable checkpoint(s): {last}: not a readable checkpoint")
    assert message.endswith(f"Resuming from the previous complete one, {older}")


def test_an_interrupted_write_leaves_the_previous_checkpoint_whole(tiny_checkpoint, tmp_path, monkeypatch):
    good = read_checkpoint(tiny_checkpoint)
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint(good, path)

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # what a kill looks like from inside the writer

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({**good, "global_step": 999}, path)
    monkeypatch.undo()
    assert read_checkpoint(path)["global_step"] == good["global_step"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".last.ckpt.partial", "last.ckpt"]
    assert newest_complete_checkpoint([tmp_path]) == path  # the partial file is never a candidate


# -- config mistakes ------------------------------------------------------------------------
@pytest.mark.parametrize("extra, expected", [
    (["--data.batchsize", "4"], "unrecognized arguments: --data.batchsize 4"),
    (["--data.batch_size", "four"], "Parser key \"data.batch_size\": Expected a <class 'int'>. Got value: four"),
    (["--model.lora_dropout", "high"], 'Parser key "model.lora_dropout"'),
])
def test_unknown_keys_and_wrong_types_name_the_key(tmp_path, capsys, no_model_load, extra, expected):
    with pytest.raises(UsageError, match=re.escape(expected)):
        cli_main(quick_args(tmp_path, *extra))
    assert main(quick_args(tmp_path, *extra)) == 2  # the command line: one line, no usage page first
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1


def test_unknown_key_in_a_config_file_is_named(tmp_path, capsys, no_model_load):
    config = tmp_path / "override.yaml"
    config.write_text("data:\n  max_lenght: 128\n")
    with pytest.raises(UsageError, match="max_lenght"):
        cli_main(quick_args(tmp_path, "--config", str(config)))


@pytest.mark.parametrize("extra, error, expected", [
    (["--data.question_column", "question", "--data.train_on_prompt", "true"], DataError,
     "data.question_column is set but data.answer_column is not: set both, or neither"),
    (["--data.question_column", "q", "--data.answer_column", "q"], DataError,
     "data.question_column and data.answer_column are both 'q'"),
    (["--data.batch_size", "0"], DataError, "data.batch_size must be at least 1, got 0"),
    (["--data.val_fraction", "1.0"], DataError, "data.val_fraction must be in [0, 1), got 1.0"),
    (["--model.quantization", "none", "--model.quant_storage", "bfloat16"], SettingsError,
     "model.quant_storage only applies to 4-bit weights, but model.quantization is 'none'"),
    (["--model.lora_dropout", "1.5"], SettingsError, "model.lora_dropout must be in [0, 1), got 1.5"),
    (["--model.lora_r", "0"], SettingsError, "model.lora_r must be at least 1, got 0"),
])
def test_contradictory_settings_fail_before_the_model_loads(tmp_path, no_model_load, extra, error, expected):
    with pytest.raises(error, match=re.escape(expected)):
        cli_main(quick_args(tmp_path, *extra))


def test_a_missing_answer_column_is_named_before_the_model_loads(tmp_path, no_model_load):
    data = tmp_path / "qa.csv"
    data.write_text("question,reply\nhow are you?,fine\n")
    with pytest.raises(DataError, match=re.escape(f"{data}: no column 'answer'; the columns are ['question', "
                                                  "'reply']")):
        cli_main(quick_args(tmp_path, "--data.path", str(data), "--data.question_column", "question",
                            "--data.answer_column", "answer"))



# -- a run that never started ---------------------------------------------------------------
def test_only_a_log_folder_holding_nothing_but_events_files_is_removed(tmp_path):
    from types import SimpleNamespace

    from lightning.pytorch.loggers import TensorBoardLogger

    from mh_lightning.faults import remove_empty_log_folders

    empty, kept = (TensorBoardLogger(tmp_path, name="lightning_logs", version=v) for v in (0, 1))
    for logger in (empty, kept):
        Path(logger.log_dir).mkdir(parents=True)
        (Path(logger.log_dir) / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    (Path(kept.log_dir) / "config.yaml").write_text("seed_everything: 42\n")
    assert remove_empty_log_folders(SimpleNamespace(loggers=[empty, kept])) == [Path(empty.log_dir)]
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_1"]
    assert remove_empty_log_folders(SimpleNamespace(loggers=[kept])) == []
