"""The recipe's own way of training, timed like scripts/benchmark.py, for a side-by-side run.

    python scripts/hf_trainer_baseline.py --config configs/falcon7b_qlora.yaml \\
        --config configs/bench_cpu_20m.yaml --data.path DATA.parquet --steps 3 [--group_by_length]

The public recipe: HF `Trainer`, `prepare_model_for_kbit_training` with its default of gradient
checkpointing on, `DataCollatorForLanguageModeling(mlm=False)`, random batches (or the
Trainer's `group_by_length`), adamw_torch. The settings come from the same config files and
overrides as the benchmark (model, 4-bit, LoRA rank/alpha/dropout/targets, micro-batch,
accumulation, lr, weight decay, fp16 on a GPU), and the conversations are the project's own
train split, tokenized the same way, so both scripts train and count the very same tokens.
Padding is dynamic (to the longest row of each batch), which favours the baseline: the
recipe padded the whole dataset to its longest row at tokenization time.

The HF Trainer is used here only: the project trains with Lightning.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from typing import Any

import torch

from mh_lightning.benchmarking.common import Meter, add_mfu, base_parser, check_cli, cli_arguments, dry_run_line


def recipe_model(h: Any, device: torch.device) -> torch.nn.Module:
    """4-bit base, then the recipe's `prepare_model_for_kbit_training` (checkpointing on) and LoRA."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from mh_lightning.model import load_base_model

    # attention as transformers builds it, as in the recipe: not the project's expanded key/value heads
    model = load_base_model(h.model_name, h.quantization, h.compute_dtype, device, h.quant_storage,
                            expand_kv_heads=False)
    model.config.use_cache = False
    # The recipe's defaults, spelled out (torch wants use_reentrant given): reentrant checkpointing.
    reentrant = {"use_reentrant": True}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=reentrant)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs=reentrant)
    config = LoraConfig(r=h.lora_r, lora_alpha=h.lora_alpha, lora_dropout=h.lora_dropout,
                        target_modules=list(h.lora_target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def run(cli_args: list[str], steps: int, warmup_steps: int, group_by_length: bool) -> dict[str, Any]:
    import datasets
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from mh_lightning.training.cli import cli_main

    # The training CLI parses the configs and overrides: the same settings as the benchmark.
    cli = cli_main(cli_args, run=False)
    h, data, trainer_config = cli.model.hparams, cli.datamodule, cli.trainer
    data.setup("fit")
    train = datasets.Dataset.from_dict({"input_ids": [e.input_ids for e in data.train_examples]})
    gpu = trainer_config.strategy.root_device.type == "cuda"
    device = trainer_config.strategy.root_device
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    model = recipe_model(h, device)
    meter = Meter(warmup_steps)

    class CountingTrainer(Trainer):
        def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
            meter.count(inputs)
            return super().training_step(model, inputs, *args, **kwargs)

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="mh_lightning-hf-"),
        per_device_train_batch_size=data.hparams.batch_size,
        gradient_accumulation_steps=trainer_config.accumulate_grad_batches,
        learning_rate=h.learning_rate,
        weight_decay=h.weight_decay,
        optim="adamw_torch",
        fp16=gpu and h.compute_dtype == "float16",
        bf16=gpu and h.compute_dtype == "bfloat16",
        max_steps=warmup_steps + steps,
        group_by_length=group_by_length,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not gpu,
        seed=data.hparams.seed,
        disable_tqdm=True,
    )
    trainer = CountingTrainer(
        model=model, args=args, train_dataset=train, callbacks=[meter.clock()],
        data_collator=DataCollatorForLanguageModeling(data.tokenizer, mlm=False),
    )
    trainer.train()
    trainable, params = model.get_nb_trainable_parameters()
    result = {
        "trainer": "hf",
        "model": h.model_name,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "threads": torch.get_num_threads(),
        "quantization": h.quantization,
        "packing": False,
        "group_by_length": group_by_length,
        "gradient_checkpointing": True,
        "micro_batch": data.hparams.batch_size,
        "accumulate_grad_batches": trainer_config.accumulate_grad_batches,
        "warmup_steps": warmup_steps,
        **meter.summary(),
        "params": params,
        "trainable_params": trainable,
    }
    if gpu:
        add_mfu(result, checkpointing=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--group_by_length", action="store_true", help="the Trainer's length-grouped batches")
    args, cli_args = cli_arguments(parser, argv)
    if args.dry_run:
        print(json.dumps(dry_run_line("hf_trainer_baseline", check_cli(cli_args),
                                      group_by_length=args.group_by_length, gradient_checkpointing=True,
                                      packing=False)), flush=True)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the JSON line
        result = run(cli_args, args.steps, args.warmup_steps, args.group_by_length)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
