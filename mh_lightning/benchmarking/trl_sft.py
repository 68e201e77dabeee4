"""TRL's `SFTTrainer` on the same model, data and recipe, timed like scripts/benchmark.py.

    python scripts/trl_baseline.py --config configs/falcon7b_qlora.yaml \\
        --config configs/bench_cpu_20m.yaml --data.path DATA.parquet --epochs 1 [--mode packing]

Modes (`--mode`), TRL's own ways of batching:
- `default`: padded random batches of 8 conversations (`packing=False`, `padding_free=False`).
- `packing`: `packing=True` with its default and best strategy, best-fit decreasing (`bfd`),
  which packs the whole dataset into rows of up to `max_length` tokens and turns on
  `padding_free`: a micro-batch is 8 such rows, flattened into one row with position ids.
- `padding_free`: `padding_free=True` without packing: each micro-batch of 8 conversations is
  flattened into one row with position ids restarting at each conversation.

Same as the project's run: the 4-bit base (loaded as transformers builds it, like the HF
recipe's baseline), LoRA rank/alpha/dropout/targets, micro-batch, accumulation, lr, weight
decay, max_length, seed, and the project's train split, tokenized by the project (prompt
`<HUMAN>: q\\n<ASSISTANT>:`, completion ` a` + EOS). TRL gets those tokens as an already
tokenized prompt-completion dataset (`input_ids` + `completion_mask`), so its loss is on
the completion only and it trains on the very same tokens. TRL's fastest settings that run
on a CPU: no gradient checkpointing (TRL 1.16 turns it on by default: `--gradient_checkpointing`),
precision as the config's compute dtype (fp32 on the CPU config; `--bf16` for autocast).

On attention: transformers 4.57's Falcon builds its mask from `attention_mask` only, so in the
flattened rows of `packing` and `padding_free` SDPA (and eager) attention is causal over the whole
row and each conversation attends to the ones before it. Only FlashAttention 2 (a CUDA kernel)
reads the position ids as boundaries. See docs/benchmarks.md and tests/test_benchmark.py.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import sys
import tempfile
from typing import Any

import torch

from mh_lightning.benchmarking.common import Meter, add_mfu, base_parser, check_cli, cli_arguments, dry_run_line

# The varlen-kernel keys TRL's padding-free collator adds; Falcon's backbone in transformers 4.57 has no
# **kwargs and refuses them (TypeError: FalconModel.forward() got an unexpected keyword argument 'cu_seq_lens_q').
VARLEN_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx")
MODES = {  # --mode: (packing, padding_free)
    "default": (False, False),
    "packing": (True, False),  # bfd packing implies padding_free in TRL
    "padding_free": (False, True),
}


def completion_dataset(examples: list[Any]) -> Any:
    """The project's tokenized examples as TRL's tokenized prompt-completion format."""
    import datasets

    from mh_lightning.data import IGNORE_INDEX

    return datasets.Dataset.from_dict({
        "input_ids": [list(e.input_ids) for e in examples],
        "completion_mask": [[int(label != IGNORE_INDEX) for label in e.labels] for e in examples],
    })


def sft_config(batch_size: int, accumulation: int, learning_rate: float, weight_decay: float,
               clip: float | None, max_length: int, seed: int, mode: str, gpu: bool, fp16: bool,
               gradient_checkpointing: bool, bf16: bool, max_steps: int) -> Any:
    from trl import SFTConfig

    packing, padding_free = MODES[mode]
    return SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="mh_lightning-trl-"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        optim="adamw_torch",
        max_grad_norm=clip or 1.0,
        bf16=bf16,
        fp16=gpu and not bf16 and fp16,
        gradient_checkpointing=gradient_checkpointing,
        packing=packing,
        packing_strategy="bfd",
        padding_free=padding_free,
        # padding-free without packing does not truncate: the project's examples already are
        max_length=None if padding_free and not packing else max_length,
        completion_only_loss=True,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not gpu,
        seed=seed,
        disable_tqdm=True,
    )


def backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack under the PEFT and causal-LM wrappers (FalconModel for Falcon)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.base_model


def accepts_any_keyword(module: torch.nn.Module) -> bool:
    parameters = inspect.signature(type(module).forward).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def steps_per_epoch(trainer: Any) -> int:
    """Optimizer steps in one epoch of this trainer's batches (the last one may be partial)."""
    return math.ceil(len(trainer.get_train_dataloader()) / trainer.args.gradient_accumulation_steps)


def run(cli_args: list[str], steps: int, warmup_steps: int, mode: str, gradient_checkpointing: bool,
        bf16: bool, epochs: int | None) -> dict[str, Any]:
    from peft import LoraConfig
    from trl import SFTTrainer

    from mh_lightning.model import load_base_model
    from mh_lightning.training.cli import cli_main

    cli = cli_main(cli_args, run=False)  # the same configs and overrides as the benchmark
    h, data, trainer_config = cli.model.hparams, cli.datamodule, cli.trainer
    data.setup("fit")
    gpu = trainer_config.strategy.root_device.type == "cuda"
    bf16 = bf16 or (gpu and h.compute_dtype == "bfloat16")  # the config's precision, as the project trains
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    # attention as transformers builds it: TRL gets no help from the project's model code
    model = load_base_model(h.model_name, h.quantization, h.compute_dtype, trainer_config.strategy.root_device,
                            h.quant_storage, expand_kv_heads=False)
    lora = LoraConfig(r=h.lora_r, lora_alpha=h.lora_alpha, lora_dropout=h.lora_dropout,
                      target_modules=list(h.lora_target_modules), bias="none", task_type="CAUSAL_LM")
    meter = Meter(warmup_steps)

    class CountingTrainer(SFTTrainer):
        def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
            meter.count(inputs)
            if not accepts_any_keyword(backbone(self.model)):
                # the smallest change that lets TRL's padding-free batches reach Falcon at all: the
                # position ids stay, the boundaries go (only FlashAttention 2 would have read them)
                inputs = {k: v for k, v in inputs.items() if k not in VARLEN_KEYS}
            return super().training_step(model, inputs, *args, **kwargs)

    config = sft_config(data.hparams.batch_size, trainer_config.accumulate_grad_batches, h.learning_rate,
                        h.weight_decay, trainer_config.gradient_clip_val, data.hparams.max_length,
                        data.hparams.seed, mode, gpu, h.compute_dtype == "float16", gradient_checkpointing, bf16,
                        warmup_steps + steps)
    trainer = CountingTrainer(model=model, args=config, train_dataset=completion_dataset(data.train_examples),
                              processing_class=data.tokenizer, peft_config=lora, callbacks=[meter.clock()])
    if epochs is not None:  # whole epochs: one of warm-up, `epochs` measured
        per_epoch = steps_per_epoch(trainer)
        meter.warmup_steps, steps = per_epoch, epochs * per_epoch
        trainer.args.max_steps = per_epoch + steps
    trainer.train()
    trainable, params = trainer.model.get_nb_trainable_parameters()
    packing, padding_free = MODES[mode]
    result = {
        "trainer": "trl",
        "mode": mode,
        "model": h.model_name,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "threads": torch.get_num_threads(),
        "quantization": h.quantization,
        "packing": packing,
        "padding_free": packing or padding_free,
        "group_by_length": False,
        "gradient_checkpointing": gradient_checkpointing,
        "micro_batch": data.hparams.batch_size,
        "accumulate_grad_batches": trainer_config.accumulate_grad_batches,
        "warmup_steps": meter.warmup_steps,
        **meter.summary(),
        "params": params,
        "trainable_params": trainable,
    }
    if gpu:
        add_mfu(result, checkpointing=gradient_checkpointing)
    return result


def dry_run(cli_args: list[str], mode: str, gradient_checkpointing: bool, bf16: bool) -> dict[str, Any]:
    """Check the configs and that this TRL accepts the settings (an SFTConfig is built, on the CPU)."""
    import trl

    config = check_cli(cli_args)
    model, data, trainer = config["model"], config["data"], config["trainer"]
    with contextlib.redirect_stdout(sys.stderr):
        sft = sft_config(data["batch_size"], trainer["accumulate_grad_batches"], model["learning_rate"],
                         model["weight_decay"], trainer["gradient_clip_val"], data["max_length"], data["seed"],
                         mode, False, False, gradient_checkpointing, False, max_steps=1)
    # bfd packing turns padding_free on inside SFTTrainer, as the run reports it
    return dry_run_line("trl_baseline", config, trl=trl.__version__, mode=mode, packing=sft.packing,
                        padding_free=sft.padding_free or sft.packing, gradient_checkpointing=gradient_checkpointing)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="default", help="TRL's batching (see above)")
    parser.add_argument("--gradient_checkpointing", action="store_true", help="TRL 1.16's default; off is faster")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast on the CPU too (TRL's default; on a GPU it follows the config's dtype)")
    parser.add_argument("--epochs", type=int, help="measure this many whole epochs after one epoch of warm-up "
                        "(overrides --steps and --warmup_steps: packing changes the steps per epoch)")
    args, cli_args = cli_arguments(parser, argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.dry_run:
        print(json.dumps(dry_run(cli_args, args.mode, args.gradient_checkpointing, args.bf16)), flush=True)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the JSON line
        result = run(cli_args, args.steps, args.warmup_steps, args.mode, args.gradient_checkpointing, args.bf16,
                     args.epochs)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
