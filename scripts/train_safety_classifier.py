"""Train the semantic crisis classifier shipped in mh_lightning/resources/safety_classifier.safetensors.

    python scripts/train_safety_classifier.py            # PYTHONPATH=. if mh_lightning is not pip-installed

The protocol, in one deterministic run (about a minute on a 2-core CPU):
1. embed every row of tests/data/safety_eval.jsonl with the embedder chat runs
   (mh_lightning.safety_semantic.Embedder: int8 Linear layers, one message at a time);
2. fit an RBF-kernel SVM on the `dev` split only;
3. on `holdout`, calibrate its margin into a 0-1 score (Platt) and choose the threshold: the one
   that catches the most crisis messages while the combined detector (rules, then the classifier,
   then the rule guards: `mh_lightning.safety.combine`) keeps false positives <= --max-fpr;
4. print recall and false-positive rate on dev and holdout for rules only, semantic only, combined;
5. refit on all rows with the same hyper-parameters, keep that calibration and threshold, and write
   the artefact: support vectors (float16), their weights and categories, example texts, and
   metadata (hyper-parameters, threshold, sha256 of the data and of the embedding weights).
Two runs on the same machine write byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from mh_lightning.safety import combine
from mh_lightning.safety_patterns import CATEGORIES, detect
from mh_lightning.safety_semantic import (
    ARTEFACT,
    MODEL_NAME,
    MODEL_PACKAGE,
    Embedder,
    SemanticClassifier,
    SemanticScore,
    model_dir,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "safety_eval.jsonl"


@dataclass(frozen=True)
class Settings:
    """The classifier's hyper-parameters (chosen on holdout, see docs/safety.md)."""

    layers: tuple[int, ...] = (4, 5)  # MiniLM layers whose mean-pooled states are averaged
    max_length: int = 128  # tokens; longer messages are cut (the rules still read all of it)
    int8: bool = True  # int8 Linear layers in the embedder: half the time, same holdout figures (docs/safety.md)
    C: float = 10.0  # SVM soft margin
    gamma: float = 3.0  # RBF width on unit vectors
    max_fpr: float = 0.05  # false positives allowed on holdout, rules and classifier together


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(path: Path = DATA) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for i, row in enumerate(rows, 1):
        if row.get("split") not in ("dev", "holdout") or row.get("category") not in (*CATEGORIES, "none"):
            raise ValueError(f"{path}:{i}: needs split dev|holdout and a category in {(*CATEGORIES, 'none')}")
    return rows


class CachedEmbedder:
    """Embeds each distinct message once, then answers from memory."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder, self.known = embedder, {}

    @property
    def int8(self) -> bool:
        return self.embedder.int8

    def add(self, texts: list[str]) -> None:
        todo = sorted({t for t in texts if t not in self.known})
        self.known.update(zip(todo, self.embedder(todo), strict=True))

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.add(texts)
        return torch.stack([self.known[t] for t in texts])


def fit(vectors: torch.Tensor, rows: list[dict], settings: Settings, threshold: float = 0.0,
        calibration: tuple[float, float] = (-1.0, 0.0)) -> tuple[dict[str, torch.Tensor], dict]:
    """An RBF SVM on the messages' vectors, as the artefact's tensors and metadata."""
    # float16 is what ships: fit on the rounded vectors, so the support vectors are stored exactly
    rounded = vectors.to(torch.float16)
    svm = SVC(C=settings.C, gamma=settings.gamma, class_weight="balanced")
    svm.fit(rounded.double().numpy(), [row["crisis"] for row in rows])
    index = svm.support_
    tensors = {"support_vectors": rounded[torch.from_numpy(index)],
               "dual_coef": torch.from_numpy(svm.dual_coef_[0].astype(np.float32)),
               "category": torch.tensor([(*CATEGORIES, "none").index(rows[i]["category"]) for i in index],
                                        dtype=torch.uint8)}
    meta = {"layers": list(settings.layers), "max_length": settings.max_length, "int8": settings.int8, "C": settings.C,
            "gamma": settings.gamma, "max_fpr": settings.max_fpr, "intercept": float(svm.intercept_[0]),
            "threshold": threshold, "platt": list(calibration), "texts": [rows[i]["text"] for i in index]}
    return tensors, meta


def flaggers(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: do the rules flag it, and would a semantic hit get through (no rule guard overrules it)?

    Both come from `mh_lightning.safety.combine`: the threshold is chosen on the decisions `assess` makes."""
    rules = [detect(row["text"]) for row in rows]
    hit = SemanticScore(1.0, True, "suicide", "")
    return (np.array([combine(r, None).is_crisis for r in rules]),
            np.array([combine(r, hit).is_crisis for r in rules]))


def rates(crisis: np.ndarray, flagged: np.ndarray) -> str:
    tp, fp = int((flagged & crisis).sum()), int((flagged & ~crisis).sum())
    return (f"recall {tp / crisis.sum():.3f} ({tp}/{crisis.sum()})  "
            f"FPR {fp / (~crisis).sum():.3f} ({fp}/{(~crisis).sum()})")


def choose_threshold(rules: np.ndarray, open_to: np.ndarray, margin: np.ndarray, crisis: np.ndarray,
                     max_fpr: float) -> float:
    """The lowest margin threshold whose combined false-positive rate stays within `max_fpr`."""
    for threshold in np.unique(margin):  # ascending: the first that passes catches the most
        flagged = rules | (open_to & (margin >= threshold))
        if (flagged & ~crisis).sum() <= max_fpr * (~crisis).sum():
            return float(threshold)
    raise ValueError("no threshold keeps false positives within max_fpr: the rules alone exceed it")


def platt(margin: np.ndarray, crisis: np.ndarray) -> tuple[float, float]:
    """(a, b) with score = 1 / (1 + exp(a * margin + b)), fitted on held-out margins."""
    fit = LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), crisis)
    # rounded: the solver's last digits vary from run to run, and the artefact should not
    return round(-float(fit.coef_[0, 0]), 4), round(-float(fit.intercept_[0]), 4)


def train(data: Path = DATA, settings: Settings = Settings(), embedder: CachedEmbedder | None = None,
          log: Callable[[str], None] = print) -> tuple[dict[str, torch.Tensor], dict]:
    """The whole protocol (module docstring); returns the artefact's tensors and metadata."""
    rows = read_rows(data)
    texts = [row["text"] for row in rows]
    embedder = embedder or CachedEmbedder(Embedder(settings.layers, settings.max_length, int8=settings.int8))
    if embedder.int8 != settings.int8:  # the classifier must be trained on the vectors chat will compute
        raise RuntimeError(f"settings ask for int8={settings.int8} but the embedder runs int8={embedder.int8}; "
                           "see the warning above, or train with Settings(int8=False)")
    embedder.add(texts)
    crisis = np.array([row["crisis"] for row in rows])
    dev = np.array([row["split"] == "dev" for row in rows])
    dev_rows = [row for row in rows if row["split"] == "dev"]

    tensors, meta = fit(embedder([row["text"] for row in dev_rows]), dev_rows, settings)
    margin = np.array([s.margin for s in SemanticClassifier(tensors, meta, embedder).scores(texts)])
    rules, open_to = flaggers(rows)
    threshold = choose_threshold(rules[~dev], open_to[~dev], margin[~dev], crisis[~dev], settings.max_fpr)
    calibration = platt(margin[~dev], crisis[~dev])
    log("dev: the classifier was fitted on it; holdout: never seen, the threshold was chosen on it")
    for name, mask in (("dev", dev), ("holdout", ~dev)):
        semantic = margin[mask] >= threshold
        log(f"{name:>7} rules only    {rates(crisis[mask], rules[mask])}")
        log(f"{name:>7} semantic only {rates(crisis[mask], semantic)}")
        log(f"{name:>7} combined      {rates(crisis[mask], rules[mask] | (open_to[mask] & semantic))}")

    tensors, meta = fit(embedder(texts), rows, settings, threshold, calibration)
    meta.update({"rows": len(rows), "data": data.name, "data_sha256": sha256(data), "model": MODEL_NAME,
                 "model_package": MODEL_PACKAGE, "model_sha256": sha256(model_dir() / "model.safetensors")})
    log(f"shipped: fitted on all {len(rows)} rows, {len(meta['texts'])} support vectors, margin threshold "
        f"{threshold:.4f}, platt ({calibration[0]:.3f}, {calibration[1]:.3f})")
    return tensors, meta


def save(tensors: dict[str, torch.Tensor], meta: dict, out: Path) -> None:
    save_file(tensors, out, metadata={"classifier": json.dumps(meta, ensure_ascii=False)})
    out.chmod(0o644)  # a package resource: readable by everyone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="labelled messages (JSONL)")
    parser.add_argument("--out", type=Path, default=ARTEFACT, help="where the artefact goes")
    parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    tensors, meta = train(args.data)
    if not args.dry_run:
        save(tensors, meta, args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
