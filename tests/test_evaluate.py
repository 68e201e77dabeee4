"""`python -m mh_lightning.evaluate` on the tiny checkpoint: the split, the figures, the files."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mh_lightning.data import MentalHealthDataModule, load_conversations, split_conversations
from mh_lightning.evaluate import FIGURES, evaluation_questions, loss_curves, main, run_logs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_evaluate_with_base_comparison_writes_every_figure_for_both_models(tiny_run, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(tiny_checkpoint), "--limit", "8", "--compare-base", "--out", str(out),
                 "--max_new_tokens", "8"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    _, val = split_conversations(load_conversations("builtin:sample"), val_fraction=0.125, seed=42)
    assert report["questions"] == len(val) == 4  # the held-out questions of training's split (limit 8 > 4)
    assert report["split"] == "val" and report["data"]["seed"] == 42 and report["data"]["val_fraction"] == 0.125
    assert report["generation"]["max_new_tokens"] == 8 and report["generation"]["seed"] == 0
    assert set(report["models"]) == {"fine_tuned", "base"}
    for figures in report["models"].values():
        assert set(figures) == set(FIGURES)
        assert all(math.isfinite(v) for v in figures.values())
        assert all(0 <= figures[k] <= 1 for k in ("rouge1_f", "rouge2_f", "rougeL_f", "bleu4", "stop_rate"))
        assert 0 < figures["mean_answer_tokens"] <= 8
    tuned, base = report["models"]["fine_tuned"], report["models"]["base"]
    # Over the whole validation split, answer perplexity is training's own val/perplexity ...
    logs = EventAccumulator(str(tiny_run / "lightning_logs" / "version_0"))
    logs.Reload()
    val_losses = [e.value for e in logs.Scalars("val/loss")]
    assert min(abs(math.log(tuned["answer_perplexity"]) - v) for v in val_losses) < 1e-3
    # ... and switching the adapters off gives the untrained base back, which fits the answers worse.
    assert base["answer_perplexity"] > tuned["answer_perplexity"]

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["row"] for s in samples] == [c.row for c in val]
    assert [(s["question"], s["reference"]) for s in samples] == [(c.question, c.answer) for c in val]
    for s in samples:
        assert set(s["answers"]) == {"fine_tuned", "base"}
        assert s["answers"]["fine_tuned"]["stop_reason"] in ("eos", "stop_string", "length")

    markdown = (out / "report.md").read_text()
    assert "| figure | fine-tuned | base (adapters off) |" in markdown
    for label in FIGURES.values():
        assert f"| {label} | " in markdown
    assert f"| BLEU-4 | {tuned['bleu4']:.4f} | {base['bleu4']:.4f} |" in markdown
    assert "![train and validation loss](loss_curves.png)" in markdown
    assert (out / "loss_curves.png").read_bytes().startswith(PNG_MAGIC)


def test_data_overrides_change_the_split_and_missing_logs_are_reported(tiny_checkpoint, tmp_path, capsys):
    moved = tmp_path / "elsewhere" / "checkpoints" / "model.ckpt"  # no lightning_logs beside it
    moved.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, moved)
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(moved), "--data.val_fraction", "0.25", "--limit", "5", "--out", str(out),
                 "--max_new_tokens", "4", "--greedy"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    _, val = split_conversations(load_conversations("builtin:sample"), val_fraction=0.25, seed=42)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["row"] for s in samples] == [c.row for c in val[:5]]
    assert list(report["models"]) == ["fine_tuned"] and report["loss_curves"] is None
    assert "No loss curves: no TensorBoard logs next to the checkpoint" in (out / "report.md").read_text()
    assert not (out / "loss_curves.png").exists()


def test_split_all_takes_every_conversation_in_order():
    data = MentalHealthDataModule(path="builtin:sample", val_fraction=0.125, seed=42)
    assert [c.row for c in evaluation_questions(data, "all", 3)] == [0, 1, 2]
    assert len(evaluation_questions(data, "all", None)) == 32
    assert len(evaluation_questions(data, "val", None)) == 4


def test_loss_curves_are_read_back_from_the_run_logs(tiny_run, tiny_checkpoint):
    assert run_logs(tiny_checkpoint) == [tiny_run / "lightning_logs" / "version_0"]
    curves = loss_curves(run_logs(tiny_checkpoint))
    assert [len(curves["train/loss"]), len(curves["val/loss"])] == [21, 3]


@pytest.mark.parametrize(("args", "message"), [
    (["--checkpoint", "missing.ckpt"], "missing.ckpt: checkpoint not found"),
    (["--num-return-sequences", "2"], "evaluation scores one answer per question"),
    (["--limit", "0"], "--limit must be at least 1, got 0"),
])
def test_usage_errors_are_one_line(args, message, tiny_checkpoint, tmp_path, capsys):
    argv = ["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ")


def test_an_export_folder_is_scored_on_the_split_it_recorded(tiny_checkpoint, tmp_path, capsys):
    from mh_lightning.export import main as export

    folder = tmp_path / "adapter"
    assert export(["--checkpoint", str(tiny_checkpoint), "--out", str(folder), "--device", "cpu"]) == 0
    recorded = json.loads((folder / "mh_lightning.json").read_text())["data_hyper_parameters"]
    assert (recorded["path"], recorded["val_fraction"], recorded["seed"]) == ("builtin:sample", 0.125, 42)
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(folder), "--out", str(out), "--limit", "2", "--max_new_tokens", "4",
                 "--greedy", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    _, val = split_conversations(load_conversations("builtin:sample"), val_fraction=0.125, seed=42)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["row"] for s in samples] == [c.row for c in val[:2]]
    assert report["checkpoint"] == str(folder) and report["global_step"] is None
