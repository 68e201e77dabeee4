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

from mh_lightning.checkpoint import CheckpointError
from mh_lightning.data import DataError, MentalHealthDataModule
from mh_lightning.model import ModelLoadError
from mh_lightning.module import FalconLoRAModule


class MHLightningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One value, one place: the tokenizer follows the model, the model knows the context.
        parser.link_arguments("model.model_name", "data.tokenizer_name")
        parser.link_arguments("data.max_length", "model.max_length")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/loss",
            "checkpoint.mode": "min",
            "checkpoint.save_last": True,
            "checkpoint.save_top_k": 1,
            "checkpoint.filename": "epoch{epoch}-step{step}-val_loss{val/loss:.4f}",
            "checkpoint.auto_insert_metric_name": False,
        })

    def before_instantiate_classes(self) -> None:
        # Checkpoints go to <default_root_dir>/checkpoints, the same folder in every run, so
        # `--ckpt_path last` finds the newest one (Lightning's default is per logger version).
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.checkpoint.dirpath is None:
            root = config.trainer.default_root_dir or os.getcwd()
            config.checkpoint.dirpath = str(Path(root) / "checkpoints")


def cli_main(args: list[str] | None = None) -> MHLightningCLI:
    return MHLightningCLI(
        FalconLoRAModule,
        MentalHealthDataModule,
        trainer_defaults={"callbacks": [LearningRateMonitor(logging_interval="step")]},
        save_config_kwargs={"overwrite": True},
        args=args,
    )


# Mistakes in the data, model or checkpoint named by the user: one clear line, no traceback.
USER_ERRORS = (DataError, ModelLoadError, CheckpointError)


def main(args: list[str] | None = None) -> int:
    try:
        cli_main(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
