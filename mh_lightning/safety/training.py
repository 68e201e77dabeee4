"""Fine-tune the crisis classifier: the protocol behind scripts/train_safety_classifier.py.

One seeded run on the CPU (see docs/safety.md for how long it takes):
1. read the labelled messages (tests/data/safety_eval.jsonl: its `dev` rows go to `train`, or to
   `calib` by a hash of their text; tests/data/safety_written.jsonl: split by writing session) and
   check that no normalised text is in two splits;
2. add mixed messages to `train`: 2-4 calm messages, with or without one crisis message among them
   (a plan inside a paragraph about podcasts is still a plan);
3. run the stock MiniLM up to `frozen_layers` once per text, then fine-tune the layers above and a
   head (crisis logit + category logits) for `epochs`;
4. round the trained tensors to float16 (what ships), fit a temperature on `calib`, and choose the two
   thresholds of `mh_lightning.safety.detector` on `calib` (the whole detector: pieces, rules);
5. the answer head (`fit_output_head`, fitted on the float16-rounded model, before the temperature) and
   its threshold come from the labelled train answers;
6. print recall / false-positive rate and a reliability table on `calib` and `holdout`, and write
   the artefact with its metadata (settings, thresholds, sha256 of the data and of the base model).

Run it through the script, which pins MKL and torch to their AVX2 kernels before torch is imported
(a retrain elsewhere then repeats the shipped numbers up to rounding).

`mh_lightning.safety.soup` runs steps 4-6 on the average of artefacts the script made (`--soup`).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from mh_lightning.prompts import DEFAULT_STYLE
from mh_lightning.safety.classifier import (
    CATEGORIES,
    MODEL_NAME,
    MODEL_PACKAGE,
    CrisisClassifier,
    CrisisModel,
    answer_pieces,
    conversation,
    load_base,
    long_chunks,
    model_dir,
    model_input,
    pieces,
)
from mh_lightning.safety.evaluation import rates, reliability
from mh_lightning.safety.rules import detect

REPO = Path(__file__).resolve().parents[2]  # a source checkout: the labelled data lives in tests/data
EVAL_SET = REPO / "tests" / "data" / "safety_eval.jsonl"
WRITTEN = REPO / "tests" / "data" / "safety_written.jsonl"
OUTPUTS = REPO / "tests" / "data" / "safety_outputs.jsonl"
SAMPLES = REPO / "mh_lightning" / "resources" / "sample_conversations.jsonl"
BLIND = REPO / "tests" / "data" / "blind"  # blind evaluation sets: their messages are never trained on
SPLITS = ("train", "calib", "holdout")


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters, chosen on the calib split (docs/safety.md)."""

    frozen_layers: int = 2  # stock MiniLM layers below the fine-tuned ones (6 in all); 4 was round 1
    max_length: int = 64  # tokens per piece; long messages are also read in chunks (classifier.pieces)
    epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-4  # fine-tuned layers; the new heads learn 10x faster
    weight_decay: float = 0.01
    mixtures: int = 400  # mixed messages added to train
    calm_chunks: bool = True  # the chunks of long calm train messages are calm rows too (what `pieces` reads)
    calib_percent: int = 15  # share of the project set's dev rows kept for calibration
    max_fpr: float = 0.05  # false positives allowed on calib when choosing thresholds (the target; 0.04 until round 10)
    output_c: float = 1.0  # inverse L2 strength of the answer head's logistic regression
    output_max_fpr: float = 0.03  # labelled safe answers flagged, in 5-fold cross-validation on train
    sample_weight: float = 5.0  # weight of each piece of the package's sample answers in the answer head's fit
    seed: int = 0
    threads: int = 1  # fixed (MKL's reproducible mode needs the same count); 2 threads stall on a busy machine


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 100


def read_rows(settings: Settings, paths: tuple[Path, ...] = (EVAL_SET, WRITTEN)) -> list[dict]:
    """Every labelled row with `split` in SPLITS, less the train rows that a blind set also holds (a
    short message that two writers both wrote); fails on a duplicate across splits."""
    rows: list[dict] = []
    for path in paths:
        if not path.exists():
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or not isinstance(row.get("crisis"), bool):
                raise ValueError(f"{path}:{i}: needs text (string) and crisis (true/false)")
            split = row.get("split")
            if split == "dev":
                split = "calib" if _bucket(row["text"]) < settings.calib_percent else "train"
            if split not in SPLITS:
                raise ValueError(f"{path}:{i}: split {row.get('split')!r}; use dev|holdout (project set) or "
                                 f"{'|'.join(SPLITS)}")
            category = row.get("category", "none")
            if row["crisis"] and category not in CATEGORIES:
                raise ValueError(f"{path}:{i}: a crisis row needs category in {CATEGORIES}, got {category!r}")
            rows.append({**row, "split": split, "source": path.name})
    blind = {model_input(json.loads(line)["text"]) for path in sorted(BLIND.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    rows = [row for row in rows if row["split"] != "train" or model_input(training_text(row)) not in blind]
    seen: dict[str, str] = {}
    for row in rows:
        key = model_input(training_text(row))
        if seen.setdefault(key, row["split"]) != row["split"]:
            raise ValueError(f"{row['source']}: {row['text']!r} is in both {seen[key]} and {row['split']}; "
                             "deduplicate with scripts/import_safety_writing.py")
    return rows


def training_text(row: dict) -> str:
    """What the classifier learns a row from: the message, or for a labelled conversation the
    conversation piece the detector reads (its last earlier turns with the message)."""
    return conversation(row["text"], row.get("context") or ()) or row["text"]


def mixtures(rows: list[dict], count: int, rng: random.Random, max_words: int = 45) -> list[dict]:
    """Mixed messages: calm ones joined, half of them with one crisis message at a random place; at most
    `max_words` words, so the crisis part is never cut off by max_length (the label would be a lie)."""
    calm = [r["text"] for r in rows if not r["crisis"] and not r.get("context")]
    crisis = [r for r in rows if r["crisis"] and not r.get("context")]
    made = []
    for i in range(count):
        parts, row = [], {"crisis": False, "category": "none"}
        if i % 2 == 0:
            pick = rng.choice(crisis)
            parts, row = [pick["text"]], {"crisis": True, "category": pick["category"]}
        for _ in range(rng.randint(1, 3)):
            extra = rng.choice(calm)
            if sum(len(p.split()) for p in parts) + len(extra.split()) <= max_words:
                parts.insert(rng.randint(0, len(parts)), extra)
        text = " ".join(p.strip() if p.strip()[-1:] in ".!?" else p.strip() + "." for p in parts)
        made.append({**row, "text": text, "split": "train", "source": "mixture"})
    return made


def calm_chunks(rows: list[dict]) -> list[dict]:
    """Every chunk of a long calm message, as a calm row: the detector reads long messages in chunks too
    (`classifier.pieces`), and a chunk torn from a calm message must not read as a crisis. (A crisis
    message's chunks are not all crises: none are added.)"""
    return [{"text": chunk, "crisis": False, "category": "none", "split": "train", "source": "chunk"}
            for row in rows if not row["crisis"] and not row.get("context") for chunk in long_chunks(row["text"])]


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    return tokenizer([model_input(t) for t in texts], truncation=True, max_length=max_length, padding=True,
                     return_tensors="pt")


def bottom_states(model: CrisisModel, tokenizer, texts: list[str], max_length: int) -> list[torch.Tensor]:
    """The frozen layers' output per text, [tokens, 384], computed once (sorted by length: little padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    states: list[torch.Tensor | None] = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            index = order[start:start + 64]
            batch = tokenize(tokenizer, [texts[i] for i in index], max_length)
            hidden = model.bottom(batch["input_ids"], batch["attention_mask"])
            for row, i in enumerate(index):
                states[i] = hidden[row, :int(batch["attention_mask"][row].sum())].clone()
    return states


def padded(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(s.shape[0] for s in states)
    hidden = torch.zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length, dtype=torch.long)
    for i, s in enumerate(states):
        hidden[i, :s.shape[0]], mask[i, :s.shape[0]] = s, 1
    return hidden, mask


def fine_tune(model: CrisisModel, states: list[torch.Tensor], rows: list[dict], settings: Settings,
              log: Callable[[str], None]) -> None:
    started = time.perf_counter()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trained = [p for layer in model.layers[settings.frozen_layers:] for p in layer.parameters()]
    for parameter in (*trained, *model.head.parameters()):
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW([{"params": trained, "lr": settings.lr},
                                   {"params": list(model.head.parameters()), "lr": settings.lr * 10}],
                                  weight_decay=settings.weight_decay)
    steps = settings.epochs * -(-len(rows) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (0.1 * steps))
                                                 * max(0.0, 1 - step / steps))
    crisis = torch.tensor([float(r["crisis"]) for r in rows])
    category = torch.tensor([CATEGORIES.index(r["category"]) if r["crisis"] else -100 for r in rows])
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)  # dropout's stream: the same whatever was drawn before (heads' init)
    model.train()
    for epoch in range(settings.epochs):
        order, total = torch.randperm(len(rows), generator=generator).tolist(), 0.0
        for start in range(0, len(order), settings.batch_size):
            index = order[start:start + settings.batch_size]
            hidden, mask = padded([states[i] for i in index])
            logits = model.top(hidden, mask)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], crisis[index])
            if (category[index] >= 0).any():
                loss = loss + 0.5 * torch.nn.functional.cross_entropy(logits[:, 1:], category[index], ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        log(f"epoch {epoch + 1}/{settings.epochs}: loss {total / len(rows):.4f} "
            f"({time.perf_counter() - started:.0f} s)")
    model.eval()


def fit_temperature(logits: torch.Tensor, crisis: torch.Tensor) -> float:
    """The temperature with the lowest log-loss on held-out logits (a grid: deterministic)."""
    grid = torch.exp(torch.linspace(-2.0, 2.0, 401, dtype=torch.float64))
    losses = [float(torch.nn.functional.binary_cross_entropy_with_logits(logits.double() / t, crisis.double()))
              for t in grid]
    return round(float(grid[min(range(len(grid)), key=losses.__getitem__)]), 4)


def decisions(best: torch.Tensor, fired: torch.Tensor, threshold: float, rule_threshold: float) -> torch.Tensor:
    """`mh_lightning.safety.detector.combine`'s decision, vectorised."""
    return (best >= threshold) | (fired & (best >= rule_threshold))


def choose_thresholds(best: torch.Tensor, fired: torch.Tensor, crisis: torch.Tensor,
                      max_fpr: float) -> tuple[float, float]:
    """The (threshold, rule_threshold) pair with the best recall whose FPR stays within max_fpr
    (ties: the higher thresholds, fewer false alarms)."""
    grid = [round(0.02 * k, 2) for k in range(1, 50)]
    found = (-1.0, 0.0, 0.0, 0.0)
    for threshold in grid:
        for rule_threshold in (r for r in grid if r <= threshold):
            flagged = decisions(best, fired, threshold, rule_threshold)
            fpr = float((flagged & ~crisis).sum()) / max(1, int((~crisis).sum()))
            recall = float((flagged & crisis).sum()) / max(1, int(crisis.sum()))
            if fpr <= max_fpr and (recall, threshold, rule_threshold) > found[:3]:
                found = (recall, threshold, rule_threshold, fpr)
    if found[0] < 0:
        raise ValueError(f"no thresholds keep calib false positives within {max_fpr}")
    return found[1], found[2]


def fit_output_head(model: CrisisModel, tokenizer, settings: Settings, calm: list[str],
                    log: Callable[[str], None]) -> float:
    """A logistic regression on `CrisisModel.answer_features`, for answers read as the screen reads
    them (`answer_pieces`: whole, and long ones in chunks of sentences; the most worrying one counts).
    Fitted on the labelled answers' train split plus safe text the answers alone lack: every chunk of
    a safe answer (a long supportive answer must not be flagged by one of its chunks), the package's
    sample answers and calm messages of the train split. Returns the
    threshold: the lowest whose false-positive rate on the labelled safe train answers, scored by
    their most worrying piece out of fold (5 folds, an answer's pieces in its fold), stays within
    `output_max_fpr`; the holdout answers never choose anything."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    answers = [json.loads(line) for line in OUTPUTS.read_text(encoding="utf-8").splitlines()]
    sample_answers = [DEFAULT_STYLE.parse(json.loads(line)["text"])[1]
                      for line in SAMPLES.read_text(encoding="utf-8").splitlines()]
    labelled = [(a["text"], a["unsafe"]) for a in answers if a["split"] == "train"]
    items: list[tuple[str, bool, int]] = []  # text, label, group (one answer or safe text)
    samples = range(len(labelled), len(labelled) + len(sample_answers))  # their groups
    for group, (text, unsafe) in enumerate(labelled):  # an unsafe answer's other chunks may be harmless
        items += [(chunk, unsafe, group) for chunk in (answer_pieces(text)[:1] if unsafe else answer_pieces(text))]
    for group, text in enumerate(sample_answers + calm, start=len(labelled)):
        items += [(chunk, False, group) for chunk in answer_pieces(text)]
    with torch.inference_mode():
        pooled = []
        for start in range(0, len(items), 64):
            batch = tokenize(tokenizer, [item[0] for item in items[start:start + 64]], settings.max_length)
            pooled.append(model.answer_features(batch["input_ids"], batch["attention_mask"]))
    features = torch.cat(pooled).double().numpy()
    labels = [item[1] for item in items]
    groups = [item[2] for item in items]
    weights = np.array([settings.sample_weight if group in samples else 1.0 for group in groups])

    def regression() -> LogisticRegression:
        return LogisticRegression(C=settings.output_c, class_weight="balanced", max_iter=5000)

    held = torch.zeros(len(items), dtype=torch.float64)
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=settings.seed)
    for fit_rows, test_rows in folds.split(features, labels, groups):
        fold = regression().fit(features[fit_rows], [labels[i] for i in fit_rows], sample_weight=weights[fit_rows])
        held[test_rows] = torch.tensor(fold.predict_proba(features[test_rows])[:, 1])
    worst = torch.zeros(len(labelled), dtype=torch.float64)
    for i, (_, _, group) in enumerate(items):  # an answer's score: its most worrying piece
        if group < len(labelled):
            worst[group] = max(worst[group], held[i])
    unsafe = torch.tensor([label for _, label in labelled])
    threshold, recall = 0.98, 0.0
    for step in range(49, 0, -1):  # 0.98 down to 0.02: the lowest threshold within the budget
        flagged = worst >= step / 50
        if float((flagged & ~unsafe).sum()) / max(1, int((~unsafe).sum())) > settings.output_max_fpr:
            break
        threshold, recall = round(step / 50, 2), float((flagged & unsafe).sum()) / max(1, int(unsafe.sum()))
    fit = regression().fit(features, labels, sample_weight=weights)
    model.output.weight.data = torch.tensor(fit.coef_, dtype=torch.float32)
    model.output.bias.data = torch.tensor(fit.intercept_, dtype=torch.float32)
    log(f"answer head: {len(items)} pieces ({len(labelled)} labelled answers); output_threshold {threshold} "
        f"(out-of-fold recall {recall:.3f} on the labelled train answers at FPR <= {settings.output_max_fpr})")
    return threshold


def best_piece(classifier: CrisisClassifier, rows: list[dict]) -> torch.Tensor:
    """The detector's probability per row: its most worrying piece (with the conversation piece
    for a labelled conversation)."""
    flat = [(i, piece.text) for i, row in enumerate(rows) for piece in pieces(row["text"], row.get("context") or ())]
    probability = torch.tensor(classifier.probabilities([t for _, t in flat]))
    best = torch.zeros(len(rows))
    for (i, _), p in zip(flat, probability.tolist(), strict=True):
        best[i] = max(best[i], p)
    return best


def train(settings: Settings = Settings(), log: Callable[[str], None] = print) -> tuple[dict[str, torch.Tensor], dict]:
    """The whole protocol (module docstring); returns the artefact's tensors and metadata."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    rows = read_rows(settings)
    by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    extra = calm_chunks(by_split["train"]) if settings.calm_chunks else []
    mixed = mixtures(by_split["train"], settings.mixtures, random.Random(settings.seed))
    train_rows = by_split["train"] + mixed + extra
    log(f"rows: train {len(by_split['train'])} (+{settings.mixtures} mixed, +{len(extra)} chunks of long calm ones), "
        f"calib {len(by_split['calib'])}, holdout {len(by_split['holdout'])}")

    tokenizer, bert = load_base()
    model = CrisisModel(bert, settings.frozen_layers)
    states = bottom_states(model, tokenizer, [training_text(r) for r in train_rows], settings.max_length)
    log(f"frozen layers computed in {time.perf_counter() - started:.0f} s")
    fine_tune(model, states, train_rows, settings, log)
    return finish(model, tokenizer, settings, by_split, started, log)


def finish(model: CrisisModel, tokenizer, settings: Settings, by_split: dict[str, list[dict]], started: float,
           log: Callable[[str], None]) -> tuple[dict[str, torch.Tensor], dict]:
    """Steps 4-6 of the protocol on a fine-tuned model; returns the artefact's tensors and metadata."""
    def round_to_float16() -> dict[str, torch.Tensor]:  # what ships: every later choice reads these values
        tensors = {name: t.detach().to(torch.float16).contiguous() for name, t in model.trained_state().items()}
        model.load_state_dict({name: t.to(torch.float32) for name, t in tensors.items()}, strict=False)
        return tensors

    round_to_float16()  # the answer head reads the fine-tuned layers as they ship
    output_threshold = fit_output_head(model, tokenizer, settings,
                                       [r["text"] for r in by_split["train"] if not r["crisis"]], log)
    tensors = round_to_float16()

    meta = {**asdict(settings), "temperature": 1.0, "threshold": 0.5, "rule_threshold": 0.5,
            "output_threshold": output_threshold}
    classifier = CrisisClassifier(model, tokenizer, meta)
    calib = by_split["calib"]
    calib_crisis = torch.tensor([r["crisis"] for r in calib])
    raw = classifier.logits([training_text(r) for r in calib])[:, 0]
    meta["temperature"] = classifier.temperature = fit_temperature(raw, calib_crisis.float())
    best = {s: best_piece(classifier, by_split[s]) for s in ("calib", "holdout")}
    fired = {s: torch.tensor([detect(r["text"]).category != "none" for r in by_split[s]]) for s in ("calib", "holdout")}
    meta["threshold"], meta["rule_threshold"] = choose_thresholds(best["calib"], fired["calib"], calib_crisis,
                                                                  settings.max_fpr)
    log(f"temperature {meta['temperature']}, threshold {meta['threshold']}, rule_threshold {meta['rule_threshold']}")
    log("calib: thresholds and temperature were chosen on it; holdout: never used for a choice")
    for split in ("calib", "holdout"):
        crisis = torch.tensor([r["crisis"] for r in by_split[split]])
        log(f"{split:>7} rules only  {rates(crisis, fired[split])}")
        log(f"{split:>7} model only  {rates(crisis, best[split] >= meta['threshold'])}")
        flagged = decisions(best[split], fired[split], meta["threshold"], meta["rule_threshold"])
        log(f"{split:>7} detector    {rates(crisis, flagged)}")
        log(f"reliability on {split} (most worrying piece per message):")
        for line in reliability(best[split], crisis):
            log("  " + line)
    meta.update({"rows": {s: len(v) for s, v in by_split.items()}, "model": MODEL_NAME, "model_package": MODEL_PACKAGE,
                 "model_sha256": sha256(model_dir() / "model.safetensors"),
                 "data_sha256": {p.name: sha256(p) for p in (EVAL_SET, WRITTEN, OUTPUTS) if p.exists()},
                 "train_seconds": round(time.perf_counter() - started)})
    log(f"trained in {meta['train_seconds']} s on {settings.threads} threads")
    return tensors, meta


def save(tensors: dict[str, torch.Tensor], meta: dict, out: Path) -> None:
    meta = {k: v for k, v in meta.items() if k != "train_seconds"}  # the file must not depend on the clock
    save_file(tensors, out, metadata={"classifier": json.dumps(meta, ensure_ascii=False, sort_keys=True)})
    out.chmod(0o644)  # a package resource: readable by everyone
