"""The recipe end to end through `python -m mh_lightning.fit` on the tiny offline model."""

import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from conftest import COUNSEL_CSV, REAL_PARQUET, REPO, TINY_CONFIG, fit_args, needs_real_data
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mh_lightning.checkpoint import read_checkpoint
from mh_lightning.data import MentalHealthDataModule
from mh_lightning.fit import cli_main, main
from mh_lightning.model import load_tokenizer
from mh_lightning.module import FalconLoRAModule


def scalars(root: Path) -> dict[str, list[float]]:
    (events,) = root.glob("lightning_logs/version_0/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_fit_logs_falling_train_loss_and_val_loss(tiny_run):
    logged = scalars(tiny_run)
    train, val = logged["train/loss"], logged["val/loss"]
    assert len(train) == 21 and len(val) == 3  # 3 epochs of 7 steps, one validation each
    assert sum(train[-3:]) / 3 < sum(train[:3]) / 3 - 0.1
    assert "val/perplexity" in logged
    assert abs(logged["val/perplexity"][-1] - torch.tensor(val[-1]).exp().item()) < 1e-2


def test_checkpoint_holds_lora_tensors_only_and_how_to_rebuild(tiny_run, tiny_checkpoint):
    checkpoint = read_checkpoint(tiny_checkpoint)
    keys = list(checkpoint["state_dict"])
    assert len(keys) == 16 and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert tiny_checkpoint.stat().st_size < 2_000_000  # megabytes, not the base model
    hp = checkpoint["hyper_parameters"]
    rebuild = (hp["model_name"], hp["quantization"], hp["lora_r"], hp["lora_alpha"])
    assert rebuild == ("builtin:tiny-falcon", "nf4", 16, 32)
    assert checkpoint["mh_lightning"]["prompt_style"]["human_tag"] == "<HUMAN>:"
    assert checkpoint["datamodule_hyper_parameters"]["path"] == "builtin:sample"
    assert checkpoint["global_step"] == 21
    assert (tiny_run / "lightning_logs" / "version_0" / "config.yaml").is_file()


def test_one_optimizer_step_changes_lora_tensors_and_nothing_else(tmp_path):
    module = FalconLoRAModule(model_name="builtin:tiny-falcon", compute_dtype="float32", lora_dropout=0.0,
                              learning_rate=1e-2)
    data = MentalHealthDataModule(path="builtin:sample", batch_size=4, max_length=128)
    data.connect(load_tokenizer("builtin:tiny-falcon"))
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    before: dict[str, torch.Tensor] = {}

    class Snapshot(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            before.update({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    trainer.callbacks.append(Snapshot())
    trainer.fit(module, data)
    after = module.state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    lora_b = {k for k in before if ".lora_B." in k}
    assert len(lora_b) == 8 and lora_b <= changed  # B starts at zero and must move
    assert all(".lora_A." in k or ".lora_B." in k for k in changed), changed - lora_b


def test_resuming_continues_the_global_step(tiny_run, tiny_checkpoint, tmp_path):
    cli_main(fit_args(tmp_path, "--trainer.max_epochs", "4", "--ckpt_path", str(tiny_checkpoint)))
    resumed = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 28  # 21 before + one more epoch of 7
    assert resumed["epoch"] == 3


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["fit", "--config", str(config), "--print_config"])
    assert exit_.value.code in (0, None)
    assert yaml.safe_load(capsys.readouterr().out)["model"]["model_name"]


def test_print_config_of_the_recipe_shows_its_values(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(REPO / "configs" / "falcon7b_qlora.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["model_name"] == "vilsonrodrigues/falcon-7b-instruct-sharded"
    assert config["data"]["path"] == "heliosbrahma/mental_health_chatbot_dataset"
    assert config["trainer"]["max_epochs"] == 4
    assert config["data"]["batch_size"] == 8
    assert config["trainer"]["accumulate_grad_batches"] == 8
    assert config["model"]["learning_rate"] == 1e-4
    assert config["model"]["weight_decay"] == 0.01
    assert config["model"]["optimizer"] == "adamw"
    assert config["trainer"]["precision"] == "16-mixed"
    assert config["seed_everything"] == 42
    assert "tokenizer_name" not in config["data"]  # linked to model.model_name, not a second setting
    # model.optimizer / model.lr_schedule choose these: LightningCLI's own keys would be unused
    assert "optimizer" not in config and "lr_scheduler" not in config
    assert config["overwrite"] is False


def test_the_80gb_override_keeps_the_recipe_and_drops_checkpointing(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(REPO / "configs" / "falcon7b_qlora.yaml"),
                  "--config", str(REPO / "configs" / "gpu_80gb.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert (config["model"]["gradient_checkpointing"], config["trainer"]["precision"],
            config["model"]["compute_dtype"]) == (False, "bf16-mixed", "bfloat16")
    assert (config["data"]["batch_size"], config["trainer"]["accumulate_grad_batches"], config["data"]["packing"]) \
        == (8, 8, True)  # the recipe's batches, unchanged


@pytest.mark.slow
def test_malformed_row_stops_fit_with_file_and_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "<HUMAN>: hi\\n<ASSISTANT>: hello"}\n{"text": "<HUMAN>: no answer"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "mh_lightning.fit", *fit_args(tmp_path, "--data.path", str(bad))],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: row 1: missing the <ASSISTANT>: marker. Fix the row, or set "
        "data.on_bad_rows: skip to train on the other rows.")
    assert not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "lightning_logs").exists()  # no version_0 holding only an empty events file


# Messages every fit printed on an AVX512_BF16 CPU before docs/bnb_avx512bf16.md's fix and filters.
KNOWN_NOISE = ("bitsandbytes::gemv_4bit: an autograd kernel was not registered",
               "Failed to load CPU gemm_4bit_forward from kernels-community",
               "`isinstance(treespec, LeafSpec)` is deprecated")  # Lightning 2.6.6 on torch 2.13


@pytest.mark.slow
def test_a_short_fit_prints_none_of_the_known_noise(tmp_path):
    """The sanity check (an eval forward without gradients: where bitsandbytes repacked its 4-bit
    weights), then training steps, whose backward met the repacked kernel."""
    args = fit_args(tmp_path, "--samples.num_questions", "0", "--trainer.max_steps", "3",
                    "--trainer.limit_val_batches", "1")
    result = subprocess.run([sys.executable, "-m", "mh_lightning.fit", *args], capture_output=True, text=True,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert [message for message in KNOWN_NOISE if message in output] == []
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 3


@pytest.mark.slow
def test_skip_bad_rows_trains_on_the_rest(tmp_path):
    rows = [f'{{"text": "<HUMAN>: q{i}\\n<ASSISTANT>: answer {i}"}}' for i in range(6)] + ['{"text": "broken"}']
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(rows) + "\n")
    assert main(fit_args(tmp_path, "--data.path", str(data), "--data.on_bad_rows", "skip",
                         "--data.val_fraction", "0.2", "--trainer.max_epochs", "1")) == 0
    checkpoint = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2  # 5 training conversations in batches of 4


@needs_real_data
@pytest.mark.slow
@pytest.mark.parametrize(
    "columns", [[], ["--data.question_column", "questionText", "--data.answer_column", "answerText"]],
    ids=["parquet", "counsel_chat_csv"],
)
def test_fast_dev_run_on_the_real_datasets(tmp_path, columns):
    path = REAL_PARQUET if not columns else COUNSEL_CSV
    assert main(fit_args(tmp_path, "--data.path", str(path), *columns, "--trainer.fast_dev_run", "true")) == 0


def test_tiny_config_is_the_offline_default():
    config = yaml.safe_load(TINY_CONFIG.read_text())
    assert config["model"]["model_name"] == "builtin:tiny-falcon"
    assert config["data"]["path"] == "builtin:sample"
