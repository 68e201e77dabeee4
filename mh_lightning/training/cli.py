"""Train or validate from yaml configs: `mh-lightning fit --config configs/tiny_cpu.yaml`
(also `python -m mh_lightning.fit fit --config ...`).

The typed signatures of `FalconLoRAModule` and `MentalHealthDataModule` are the config
schema (`--print_config` shows every key, `--help` their docs). Variants are stacked
configs: `--config configs/falcon7b_qlora.yaml --config configs/ddp.yaml`.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from mh_lightning.data.datamodule import MentalHealthDataModule
from mh_lightning.errors import UsageError, one_line, run_command
from mh_lightning.model.base import load_tokenizer
from mh_lightning.model.checkpoint import read_checkpoint
from mh_lightning.training.callbacks import GradNormMonitor, SampleCallback
from mh_lightning.training.faults import NonFiniteLossGuard, explain_out_of_memory, no_empty_logs
from mh_lightning.training.module import FalconLoRAModule
from mh_lightning.training.resume import (
    OVERWRITE_HELP,
    Resumable,
    StepCheckpoint,
    is_checkpoint_file,
    protect_earlier_run,
    resolve_ckpt_path,
)
from mh_lightning.training.throughput import ThroughputMonitor


class OneLineParser(LightningArgumentParser):
    """Mistyped or unknown keys are one line (`UsageError`), not a page of usage first."""

    def error(self, message: str, ex: Exception | None = None) -> None:  # type: ignore[override]
        raise UsageError(f"{one_line(message)} (see --help)") from None


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
        parser.add_argument("--overwrite", type=bool, default=False, help=OVERWRITE_HELP)
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

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        # The data module is handed the model's tokenizer (`data.tokenizer_name` follows `model.model_name`).
        self.datamodule.connect(load_tokenizer(self.datamodule.hparams.tokenizer_name))

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
        protect_earlier_run(self.trainer, ckpt_path, self.config[self.subcommand].overwrite)  # never unasked
        ckpt_path = resolve_ckpt_path(ckpt_path, self.trainer)
        with explain_out_of_memory(self.trainer), no_empty_logs(self.trainer):
            self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)


def cli_main(args: list[str] | None = None, run: bool = True) -> MHLightningCLI:
    """The CLI; with `run=False` it only builds the trainer, model and data (no subcommand)."""
    return MHLightningCLI(
        FalconLoRAModule,
        MentalHealthDataModule,
        trainer_defaults={"callbacks": [LearningRateMonitor(logging_interval="step"), Resumable(),
                                        NonFiniteLossGuard()]},
        save_config_kwargs={"overwrite": True},
        # The optimizer and schedule are model.optimizer / model.lr_schedule: no unused top-level
        # `optimizer:` / `lr_scheduler:` keys in --print_config and --help.
        auto_configure_optimizers=False,
        parser_class=OneLineParser,
        args=args,
        run=run,
    )


def _fit(argv: list[str]) -> int:
    # `mh-lightning fit ...` hands its arguments over: LightningCLI's warning about sys.argv does not apply
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli_main(argv)
    return 0


def main(args: list[str] | None = None) -> int:
    """The LightningCLI under the project's error policy: a user's mistake is one line, exit code 2."""
    return run_command(_fit, args)


if __name__ == "__main__":
    sys.exit(main())
