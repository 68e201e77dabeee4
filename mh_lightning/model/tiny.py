"""Small Falcon-architecture models with random weights, built offline and deterministically.

They have the same architectural flags as Falcon-7B (multi-query attention, parallel
attention/MLP, no bias, rotary positions) and a byte-level BPE tokenizer trained on the
project's own conversations, so the whole QLoRA recipe runs on a CPU without downloading
anything. Their replies are noise: they exist to test and benchmark the code, not to chat.

    python -m mh_lightning.tiny --preset falcon-20m --corpus data.parquet --out models/falcon-20m
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import FalconConfig, FalconForCausalLM, PreTrainedTokenizerFast

from mh_lightning.errors import ModelLoadError
from mh_lightning.resources import SAMPLE_CONVERSATIONS

BUILTIN_PREFIX = "builtin:"
EOS_TOKEN = "<|endoftext|>"  # Falcon's own end-of-text token


@dataclass(frozen=True)
class TinySpec:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int


PRESETS = {
    # The offline default: trains in about a minute on two CPU cores.
    "tiny-falcon": TinySpec(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=1024),
    # The benchmark model of docs/benchmarks.md: ~20M parameters with a ~7k vocabulary.
    "falcon-20m": TinySpec(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, vocab_size=7000),
}


def builtin_name(name: str) -> str | None:
    """`builtin:tiny-falcon` -> `tiny-falcon`; None for hub ids and paths."""
    if not name.startswith(BUILTIN_PREFIX):
        return None
    preset = name[len(BUILTIN_PREFIX) :]
    if preset not in PRESETS:
        known = ", ".join(BUILTIN_PREFIX + p for p in PRESETS)
        raise ModelLoadError(f"unknown built-in model {name!r}; known: {known}")
    return preset


def sample_texts() -> list[str]:
    with SAMPLE_CONVERSATIONS.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (Falcon's kind) trained on `texts`; deterministic."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, model_max_length=2048)


def falcon_config(spec: TinySpec, vocab_size: int, eos_id: int) -> FalconConfig:
    return FalconConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        multi_query=True,
        parallel_attn=True,
        new_decoder_architecture=False,
        bias=False,
        alibi=False,
        max_position_embeddings=2048,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )


@functools.lru_cache(maxsize=4)
def builtin_tokenizer(preset: str) -> PreTrainedTokenizerFast:
    return train_tokenizer(sample_texts(), PRESETS[preset].vocab_size)


def corpus_tokenizer(preset: str, corpus: list[str]) -> PreTrainedTokenizerFast:
    """The preset's tokenizer trained on `corpus`. A 172-row corpus has few pairs seen twice:
    single merges are kept so the vocabulary gets near the preset's size (falcon-20m on the
    real data: 6.8k tokens, 19.6M parameters)."""
    return train_tokenizer(corpus, PRESETS[preset].vocab_size, min_frequency=1)


def build(out_dir: str | Path, preset: str = "tiny-falcon", corpus: list[str] | None = None,
          seed: int = 0) -> Path:
    """Write a model folder (config, random weights, tokenizer) loadable by `from_pretrained`."""
    spec = PRESETS[preset]
    tokenizer = builtin_tokenizer(preset) if corpus is None else corpus_tokenizer(preset, corpus)
    config = falcon_config(spec, len(tokenizer), tokenizer.eos_token_id)
    # Seed a private generator state so building a model never disturbs the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FalconForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny-falcon")
    parser.add_argument("--corpus", help="conversation file to train the tokenizer on (default: the shipped sample)")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    corpus = None
    if args.corpus:
        from mh_lightning.data.loading import load_conversations

        corpus = [c.text() for c in load_conversations(args.corpus)]
    path = build(args.out, args.preset, corpus, args.seed)
    print(path)


if __name__ == "__main__":
    main()
