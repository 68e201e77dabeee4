"""Generation speed at batch 1 after training: 4-bit base + adapter, and the merged model.

    python scripts/bench_generate.py --checkpoint runs/tiny_cpu/checkpoints/last.ckpt \\
        [--questions 4] [--max_new_tokens 128] [--device cpu]

The checkpoint is loaded as training left it (the 4-bit base with its LoRA adapter, not
merged), then exported with `mh_lightning.export --merge` to a temporary folder and loaded
from there (the adapter merged into dequantized weights: a plain model). Each answers the
same questions one at a time, greedily, with the training prompt format; after
one warm-up answer, tokens/s = new tokens / seconds spent in `generate`. One JSON line per
model. Generation may stop at EOS or a stop string before `--max_new_tokens`: the count is
of the tokens really generated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch


def questions(count: int, data_path: str | None) -> list[str]:
    """The first `count` questions of `data_path` (default: the shipped sample)."""
    from mh_lightning.data import load_conversations

    return [c.question for c in load_conversations(data_path or "builtin:sample")[:count]]


def measure(path: Path, label: str, prompts: list[str], max_new_tokens: int, device: str) -> dict[str, Any]:
    from mh_lightning.inference import GenerationConfig, generate_answers
    from mh_lightning.inference.loading import load_for_inference

    model, tokenizer, style, metadata = load_for_inference(path, device)
    config = GenerationConfig(max_new_tokens=max_new_tokens, greedy=True)
    rendered = [style.prompt(q) for q in prompts]
    generate_answers(model, tokenizer, rendered[:1], GenerationConfig(max_new_tokens=8, greedy=True), style,
                     batch_size=1)  # warm-up: first-call allocations and kernel choices
    answers = generate_answers(model, tokenizer, rendered, config, style, batch_size=1)
    new_tokens = sum(a.new_tokens for a in answers)
    seconds = sum(a.seconds for a in answers)
    return {
        "model": label,
        "base": metadata["model_name"],
        "quantization": metadata.get("quantization"),
        "compute_dtype": metadata.get("compute_dtype"),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "answers": len(answers),
        "new_tokens": new_tokens,
        "seconds": seconds,
        "tokens_per_s": new_tokens / seconds,
        "stop_reasons": sorted({a.stop_reason for a in answers}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a Lightning checkpoint written by training")
    parser.add_argument("--questions", type=int, default=4, help="questions answered per model")
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--data", help="the conversations trained on (default: the shipped sample)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    from mh_lightning.inference.export import export

    with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the JSON lines
        prompts = questions(args.questions, args.data)
        results = [measure(Path(args.checkpoint), "4bit+adapter", prompts, args.max_new_tokens, args.device)]
        with tempfile.TemporaryDirectory(prefix="mh_lightning-merged-") as folder:
            merged = Path(folder) / "merged"
            export(Path(args.checkpoint), merged, merge=True, device=args.device)
            results.append(measure(merged, "merged", prompts, args.max_new_tokens, args.device))
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
