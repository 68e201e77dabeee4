"""Measure what a checkpoint learned, on the questions it was not trained on: answers generated
with the checkpoint's model and prompt style, scored with torchmetrics (`metrics`), written as
report.json, report.md (with the loss curves of the run's TensorBoard logs) and samples.jsonl.
The command is `mh-lightning evaluate` (`mh_lightning.cli.evaluate`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mh_lightning.data.datamodule import MentalHealthDataModule
from mh_lightning.data.loading import Conversation, split_conversations
from mh_lightning.data.tokenization import tokenize_conversation
from mh_lightning.errors import UsageError
from mh_lightning.evaluation.metrics import answer_perplexity, answer_stats, text_scores
from mh_lightning.inference.generation import Answer, GenerationConfig, generate_answers
from mh_lightning.inference.loading import load_model
from mh_lightning.prompts import PromptStyle

MODELS = {"fine_tuned": "fine-tuned", "base": "base (adapters off)"}
FIGURES = {  # report key: label in report.md
    "rouge1_f": "ROUGE-1 F",
    "rouge2_f": "ROUGE-2 F",
    "rougeL_f": "ROUGE-L F",
    "bleu4": "BLEU-4",
    "answer_perplexity": "answer perplexity (reference answers)",
    "mean_answer_tokens": "mean answer length (tokens)",
    "mean_answer_words": "mean answer length (words)",
    "stop_rate": "stop rate (EOS or stop string)",
}
LOSS_TAGS = ("train/loss", "val/loss")
PLOT_NAME = "loss_curves.png"


# -- questions -----------------------------------------------------------------------------
def evaluation_questions(data: MentalHealthDataModule, split: str, limit: int | None) -> list[Conversation]:
    """The validation conversations of training's split (or all of them), the first `limit`."""
    h = data.hparams
    conversations = data.conversations()
    if split == "val":
        _, conversations = split_conversations(conversations, h.val_fraction, h.seed)
        if not conversations:
            raise UsageError(f"data.val_fraction={h.val_fraction} leaves no validation questions: "
                             "use --split all, or set --data.val_fraction")
    return conversations[:limit] if limit is not None else conversations


# -- one model's answers and figures ---------------------------------------------------------
def answer_all(model: Any, tokenizer: Any, prompts: Sequence[str], config: GenerationConfig, style: PromptStyle,
               batch_size: int, max_context: int | None, label: str) -> list[Answer]:
    with tqdm(total=len(prompts), desc=f"answering ({label})", unit="question", file=sys.stderr) as bar:
        return generate_answers(model, tokenizer, prompts, config, style, batch_size, max_context, bar.update)


def score(model: Any, tokenizer: Any, questions: Sequence[Conversation], answers: Sequence[Answer],
          style: PromptStyle, max_length: int, batch_size: int) -> dict[str, float]:
    # The reference answers as training scores them: prompt masked, EOS included, cut at max_length.
    examples = [tokenize_conversation(c, tokenizer, max_length, False, style) for c in questions]
    return {
        **text_scores([a.text for a in answers], [c.answer for c in questions]),
        "answer_perplexity": answer_perplexity(model, examples, tokenizer.pad_token_id, batch_size),
        **answer_stats(answers),
    }


# -- loss curves from the run's TensorBoard logs -------------------------------------------
def run_logs(checkpoint: Path) -> list[Path]:
    """`<root>/lightning_logs/version_*` of a checkpoint at `<root>/checkpoints/x.ckpt`, oldest first."""
    folder = checkpoint.resolve().parent.parent / "lightning_logs"
    versions = [p for p in folder.glob("version_*") if p.is_dir() and any(p.glob("events.out.tfevents.*"))]
    return sorted(versions, key=lambda p: int(p.name.split("_")[-1]) if p.name.split("_")[-1].isdigit() else -1)


def loss_curves(log_dirs: Sequence[Path]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of train/loss and val/loss; a resumed run's later versions win at equal steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, dict[int, float]] = {tag: {} for tag in LOSS_TAGS}
    for log_dir in log_dirs:
        events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
        events.Reload()
        for tag in LOSS_TAGS:
            if tag in events.Tags()["scalars"]:
                curves[tag].update({e.step: e.value for e in events.Scalars(tag)})
    return {tag: sorted(points.items()) for tag, points in curves.items() if points}


def plot_loss_curves(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe on servers

    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    for tag, points in curves.items():
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, marker="o" if tag.startswith("val") else None, markersize=3, label=tag)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (answer tokens)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


# -- files ---------------------------------------------------------------------------------
def write_samples(path: Path, questions: Sequence[Conversation], answers: dict[str, list[Answer]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, c in enumerate(questions):
            per_model = {name: {"answer": a[i].text, "stop_reason": a[i].stop_reason, "new_tokens": a[i].new_tokens}
                         for name, a in answers.items()}
            row = {"row": c.row, "question": c.question, "reference": c.answer, "answers": per_model}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def markdown_report(report: dict[str, Any]) -> str:
    names = list(report["models"])
    data = report["data"]
    lines = [
        f"# Evaluation of `{report['checkpoint']}`",
        "",
        f"{report['questions']} questions: {report['split_description']} of `{data['path']}` "
        f"(seed {data['seed']}, val_fraction {data['val_fraction']}).",
        "Generation: " + ", ".join(f"{k} {v}" for k, v in report["generation"].items()) + ".",
        "",
        "| figure | " + " | ".join(MODELS[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label in FIGURES.items():
        lines.append(f"| {label} | " + " | ".join(f"{report['models'][n][key]:.4f}" for n in names) + " |")
    lines += ["", "ROUGE is the mean F-measure over questions; BLEU-4 is corpus-level (sacreBLEU, 13a). "
              "Answer perplexity is of the reference answers given the questions (lower is better)."]
    if "base" in names:
        lines.append("The base model is the same loaded model with its LoRA adapters disabled.")
    if report["loss_curves"]:
        lines += ["", f"![train and validation loss]({report['loss_curves']})"]
    else:
        lines += ["", "No loss curves: no TensorBoard logs next to the checkpoint (`<root>/lightning_logs`)."]
    return "\n".join(lines) + "\n"


def adapters_off(model: Any, name: str) -> contextlib.AbstractContextManager[Any]:
    """The base model is the same peft model with its adapters disabled: no second load."""
    return model.disable_adapter() if name == "base" else contextlib.nullcontext()


def evaluate(args: Any, data: MentalHealthDataModule, config: GenerationConfig,
             global_step: int | None = None) -> dict[str, Any]:
    """Generate, score and write the three report files; returns report.json's content.

    `args` holds `checkpoint`, `model`, `device`, `out`, `split`, `limit`, `compare_base`,
    `batch_size` and `max_context` (the options of `mh-lightning evaluate`)."""
    questions = evaluation_questions(data, args.split, args.limit)
    model, tokenizer, style, metadata = load_model(args.checkpoint, args.device, args.model)
    prompts = [style.prompt(c.question) for c in questions]
    answers: dict[str, list[Answer]] = {}
    figures: dict[str, dict[str, float]] = {}
    for name in ["fine_tuned", "base"] if args.compare_base else ["fine_tuned"]:
        with adapters_off(model, name):
            answers[name] = answer_all(model, tokenizer, prompts, config, style, args.batch_size,
                                       args.max_context, MODELS[name])
            figures[name] = score(model, tokenizer, questions, answers[name], style,
                                  data.hparams.max_length, args.batch_size)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    curves = loss_curves(run_logs(args.checkpoint))
    if curves:
        plot_loss_curves(curves, out / PLOT_NAME)
    h = data.hparams
    report = {
        "checkpoint": str(args.checkpoint),
        "global_step": global_step,
        "base_model": metadata["model_name"],
        "split": args.split,
        "split_description": "the validation split" if args.split == "val" else "all conversations",
        "questions": len(questions),
        "data": {"path": h.path, "val_fraction": h.val_fraction, "seed": h.seed, "max_length": h.max_length},
        "generation": {**asdict(config), "max_context": args.max_context},
        "models": figures,
        "loss_curves": PLOT_NAME if curves else None,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown_report(report), encoding="utf-8")
    write_samples(out / "samples.jsonl", questions, answers)
    return report
