"""Training throughput of the project's own loop, as one JSON line.

    python scripts/benchmark.py --config configs/falcon7b_qlora.yaml --config configs/bench_cpu_20m.yaml \\
        --data.path DATA.parquet --steps 3
    python scripts/benchmark.py --config configs/falcon7b_qlora.yaml --synthetic falcon-7b \\
        --data.path DATA.parquet --steps 10

Every argument this script does not know goes to the training CLI (`--config`, `--data.*`,
`--model.*`, `--trainer.*`), so it measures exactly what `python -m mh_lightning.fit fit`
would train. It runs `--warmup_steps` optimizer steps, then `--steps` measured ones, without
validation or checkpoint writing, and prints `trained_tokens_per_s` (prompt, answer and EOS
tokens: no padding), `processed_tokens_per_s` (padding included), `padding_efficiency`,
`seconds_per_step`, `peak_host_mb`, `peak_gpu_mb`, `params`, `trainable_params` and, on a GPU
whose peak is known (or given with `--peak_tflops`), `mfu`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from mh_lightning.benchmarking.common import add_mfu, base_parser, check_cli, cli_arguments, dry_run_line

# Falcon-7B's architecture (tiiuae/falcon-7b config.json): 6.92B parameters.
SYNTHETIC = {
    "falcon-7b": dict(vocab_size=65024, hidden_size=4544, num_hidden_layers=32, num_attention_heads=71,
                      multi_query=True, parallel_attn=True, new_decoder_architecture=False, bias=False,
                      alibi=False, max_position_embeddings=2048, layer_norm_epsilon=1e-5),
}


def synthetic_config(name: str, vocab_size: int | None = None, eos_id: int = 0) -> Any:
    from transformers import FalconConfig

    values = dict(SYNTHETIC[name], bos_token_id=eos_id, eos_token_id=eos_id)
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    return FalconConfig(**values)


def build_synthetic(name: str, out: Path, corpus_path: str | None) -> Path:
    """Write `name`'s architecture with random bf16 weights (no download) and a BPE tokenizer.

    The tokenizer is trained on the benchmark data (or the shipped sample), so conversations
    are about as long in tokens as with Falcon's own; its ids all fall inside the 65k vocabulary."""
    from transformers import FalconForCausalLM

    from mh_lightning.data import load_conversations
    from mh_lightning.model import tiny

    texts = [c.text() for c in load_conversations(corpus_path)] if corpus_path else tiny.sample_texts()
    tokenizer = tiny.corpus_tokenizer("falcon-20m", texts)
    config = synthetic_config(name, eos_id=tokenizer.eos_token_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init on a GPU takes seconds
    with torch.device(device), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FalconForCausalLM._from_config(config, torch_dtype=torch.bfloat16)
    model.save_pretrained(out, max_shard_size="2GB")
    tokenizer.save_pretrained(out)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def option(args: list[str], key: str) -> str | None:
    """The last value given to `key` (`--key value` or `--key=value`) among the CLI arguments."""
    found = None
    for i, arg in enumerate(args):
        if arg == key and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(key + "="):
            found = arg.split("=", 1)[1]
    return found


def measure(cli_args: list[str], steps: int, warmup_steps: int) -> tuple[Any, Any]:
    """Train `warmup_steps + steps` optimizer steps with the project's CLI; (cli, monitor)."""
    with tempfile.TemporaryDirectory(prefix="mh_lightning-bench-") as root:  # logs of a benchmark: not kept
        return _measure(cli_args, steps, warmup_steps, root)


def _measure(cli_args: list[str], steps: int, warmup_steps: int, root: str) -> tuple[Any, Any]:
    from lightning.pytorch.callbacks import Checkpoint

    from mh_lightning.training.cli import cli_main
    from mh_lightning.training.throughput import ThroughputMonitor

    overrides = [
        "--trainer.max_steps", str(warmup_steps + steps), "--trainer.max_epochs", "-1",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", root,
    ]
    cli = cli_main([*cli_args, *overrides], run=False)
    trainer = cli.trainer
    # Checkpoints and validation are not training throughput: leave them out of the timing.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, Checkpoint)]
    monitor = next((c for c in trainer.callbacks if isinstance(c, ThroughputMonitor)), None)
    if monitor is None:
        monitor = ThroughputMonitor()
        trainer.callbacks.append(monitor)
    monitor.warmup_steps = warmup_steps
    trainer.fit(cli.model, datamodule=cli.datamodule)
    if not monitor.summary:
        raise SystemExit("nothing was measured: training stopped before the warm-up ended "
                         "(see the log above for why training stopped)")
    return cli, monitor


def report(cli: Any, monitor: Any, peak_tflops: float | None) -> dict[str, Any]:
    """The JSON line: settings, the monitor's summary, parameter counts and MFU on a GPU."""
    module, data, trainer = cli.model, cli.datamodule, cli.trainer
    trainable, params = module.model.get_nb_trainable_parameters()
    checkpointing = module.hparams.gradient_checkpointing
    result = {
        "model": module.hparams.model_name,
        "device": torch.cuda.get_device_name() if trainer.strategy.root_device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "quantization": module.hparams.quantization,
        "packing": data.hparams.packing,
        "group_by_length": data.hparams.group_by_length,
        "gradient_checkpointing": checkpointing,
        "micro_batch": data.hparams.batch_size,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "warmup_steps": monitor.warmup_steps,
        **monitor.summary,
        "params": params,
        "trainable_params": trainable,
    }
    if trainer.strategy.root_device.type == "cuda":
        add_mfu(result, checkpointing, peak_tflops)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--synthetic", choices=sorted(SYNTHETIC),
                        help="build this architecture with random weights (no download) and train it")
    parser.add_argument("--synthetic_dir", help="where to write (and reuse) the synthetic model")
    parser.add_argument("--peak_tflops", type=float, help="the GPU's peak for mfu (default: from its name)")
    args, cli_args = cli_arguments(parser, argv)
    if args.model and args.synthetic:
        parser.error("give --model or --synthetic, not both")
    if args.dry_run:  # no model is built, synthetic or not
        if args.synthetic:
            cli_args += ["--model.model_name", args.synthetic_dir or f"<synthetic {args.synthetic}>"]
        print(json.dumps(dry_run_line("benchmark", check_cli(cli_args), synthetic=args.synthetic)), flush=True)
        return
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the JSON line
        if args.synthetic:
            folder = Path(args.synthetic_dir or tempfile.mkdtemp(prefix=f"mh_lightning-{args.synthetic}-"))
            if not (folder / "config.json").is_file():
                build_synthetic(args.synthetic, folder, option(cli_args, "--data.path"))
            cli_args += ["--model.model_name", str(folder)]
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        result = report(*measure(cli_args, args.steps, args.warmup_steps), args.peak_tflops)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
