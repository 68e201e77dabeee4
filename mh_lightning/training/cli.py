"""Train or validate from yaml configs: `python -m mh_lightning.fit fit --config configs/tiny_cpu.yaml`.

The typed signatures of `FalconLoRAModule` and `MentalHealthDataModule` are the config
schema (`--print_config` shows every key, `--help` their docs). Variants are stacked
configs: `--config configs/falcon7b_qlora.yaml --config configs/ddp.yaml`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from mh_lightning.data.loading import DataError, MentalHealthDataModule
from mh_lightning.model.base import ModelLoadError
from mh_lightning.model.checkpoint import CheckpointError, read_checkpoint
from mh_lightning.training.callbacks import GradNormMonitor, SampleCallback
from mh_lightning.training.faults import NonFiniteLossError, NonFiniteLossGuard, OutOfMemoryHint, explain_out_of_memory
from mh_lightning.training.module import FalconLoRAModule, SettingsError
from mh_lightning.training.resume import Resumable, StepCheckpoint, is_checkpoint_file, resolve_ckpt_path
from mh_lightning.training.throughput import ThroughputMonitor


class MHLightningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One value, one place: the tokenizer follows the model, the model knows the context.
        parser.link_arguments("model.model_name", "data.tokenizer_name")
        parser.link_arguments("data.max_length", "model.max_length")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # Also every N optimizer steps: --step_checkpoint.every_n_train_steps N (0: off).
        parser.add_lightning_class_args(StepCheckpoint, "step_checkpoint")
        # What training learned, visible in TensorBoard: --samples.num_questions 0 turns it off.
        parser.add_lightning_class_args(SampleCallback, "samples")
        parser.add_lightning_class_args(GradNormMonitor, "grad_norm")
        parser.add_lightning_class_args(ThroughputMonitor, "throughput")  # tokens/s, padding, peak memory
        parser.set_defaults({
            "checkpoint.monitor": "val/loss",
            "checkpoint.mode": "min",
            "checkpoint.save_last": True,
            "checkpoint.save_top_k": 1,
            "checkpoint.filename": "epoch{epoch}-step{step}-val_loss{val/loss:.4f}",
            "checkpoint.auto_insert_metric_name": False,
            "checkpoint.enable_version_counter": False,  # one last.ckpt, shared with step_checkpoint
        })

    def before_instantiate_classes(self) -> None:
        # Checkpoints go to <default_root_dir>/checkpoints, the same folder in every run, so
        # `--ckpt_path last` finds the newest one (Lightning's default is per logger version).
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.checkpoint.dirpath is None:
            root = config.trainer.default_root_dir or os.getcwd()
            config.checkpoint.dirpath = str(Path(root) / "checkpoints")
        if config.step_checkpoint.dirpath is None:
            config.step_checkpoint.dirpath = config.checkpoint.dirpath

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # Lightning reads a --ckpt_path file right after parsing: a broken one is named here first.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if is_checkpoint_file(ckpt_path):
            read_checkpoint(ckpt_path)

    def fit(self, model, datamodule=None, ckpt_path=None, **kwargs) -> None:
        # `--ckpt_path last` resumes from the newest checkpoint that reads completely, and
        # running out of GPU memory names the config keys to lower.
        ckpt_path = resolve_ckpt_path(ckpt_path, self.trainer)
        with explain_out_of_memory(self.trainer):
            self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)


def cli_main(args: list[str] | None = None, run: bool = True) -> MHLightningCLI:
    """The CLI; with `run=False` it only builds the trainer, model and data (no subcommand)."""
    return MHLightningCLI(
        FalconLoRAModule,
        MentalHealthDataModule,
        trainer_defaults={"callbacks": [LearningRateMonitor(logging_interval="step"), Resumable(),
                                        NonFiniteLossGuard()]},
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


# Mistakes in the data, model or checkpoint named by the user: one clear line, no traceback.
USER_ERRORS = (DataError, SettingsError, ModelLoadError, CheckpointError, NonFiniteLossError,
               OutOfMemoryHint)


def main(args: list[str] | None = None) -> int:
    try:
        cli_main(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
