"""What `fit` writes to TensorBoard: sample answers as text, and the training scalars.

The event files of the shared tiny run are read back with TensorBoard's own reader.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from mh_lightning.callbacks import GradNormMonitor, SampleCallback, sample_markdown
from mh_lightning.data import Conversation, load_conversations, split_conversations

VALIDATION_STEPS = [7, 14, 21]  # the tiny run: 3 epochs of 7 optimizer steps, one validation each


def events(run: Path) -> EventAccumulator:
    (log_dir,) = run.glob("lightning_logs/version_0")
    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_fit_logs_sample_answers_to_validation_questions_at_each_validation(tiny_run):
    accumulator = events(tiny_run)
    tags = sorted(accumulator.Tags()["tensors"])
    assert tags == [f"samples/question_{i}/text_summary" for i in range(4)]
    train, val = split_conversations(load_conversations("builtin:sample"), val_fraction=0.125, seed=42)
    for index, tag in enumerate(tags):
        entries = accumulator.Tensors(tag)
        assert [e.step for e in entries] == VALIDATION_STEPS
        for entry in entries:
            (text,) = tensor_util.make_ndarray(entry.tensor_proto).reshape(-1)
            text = text.decode("utf-8")
            question = val[index]  # the first validation questions, the same ones every time
            assert text.startswith(f"**Question** (data row {question.row}): ")
            assert f"**Reference**: {question.answer.splitlines()[0]}" in text.replace("&#x27;", "'")
            assert f"**Answer** at step {entry.step} (" in text
            assert not any(f"(data row {c.row})" in text for c in train)


def test_fit_logs_the_training_scalars(tiny_run):
    scalars = {tag: [e.value for e in events(tiny_run).Scalars(tag)] for tag in events(tiny_run).Tags()["scalars"]}
    grad_norms = scalars["train/grad_norm"]
    assert len(grad_norms) == 21  # one per optimizer step (log_every_n_steps: 1)
    assert all(math.isfinite(g) and g > 0 for g in grad_norms)
    assert len(scalars["val/perplexity"]) == 3
    assert scalars["val/perplexity"] == pytest.approx([math.exp(v) for v in scalars["val/loss"]], rel=1e-4)
    assert len(scalars["lr-AdamW"]) == 21
    # From the throughput monitor (mh_lightning/throughput.py), one value per optimizer step.
    for tag in ("train/trained_tokens_per_s", "train/padding_efficiency", "perf/peak_host_mb"):
        assert len(scalars[tag]) == 21 and all(v > 0 for v in scalars[tag]), tag
    assert all(0 < v <= 1 for v in scalars["train/padding_efficiency"])
    assert ("perf/peak_gpu_mb" in scalars) == torch.cuda.is_available()


class LogRecorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(2))
        self.b = torch.nn.Parameter(torch.zeros(1, 2))
        self.frozen = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: torch.Tensor, **kwargs: object) -> None:
        self.logged[name] = float(value)


def test_grad_norm_is_the_norm_of_all_gradients_as_one_vector():
    module = LogRecorder()
    module.a.grad = torch.tensor([3.0, 0.0])
    module.b.grad = torch.tensor([[0.0, 4.0]])  # frozen has no gradient and is left out
    GradNormMonitor().on_before_optimizer_step(None, module, None)  # type: ignore[arg-type]
    assert module.logged == {"train/grad_norm": 5.0}
    GradNormMonitor(norm_type=1).on_before_optimizer_step(None, module, None)  # type: ignore[arg-type]
    assert module.logged == {"train/grad_norm": 7.0}


def test_sample_markdown_escapes_tags_and_keeps_line_breaks():
    conversation = Conversation(question="Is <HUMAN>: a tag?", answer="Line one\nLine two", row=3)
    answer = SimpleNamespace(text="Yes & no\nmaybe", new_tokens=5, stop_reason="eos")
    assert sample_markdown(conversation, answer, step=40) == (
        "**Question** (data row 3): Is &lt;HUMAN&gt;: a tag?\n\n"
        "**Reference**: Line one  \nLine two\n\n"
        "**Answer** at step 40 (5 new tokens, stopped by eos): Yes &amp; no  \nmaybe"
    )


def test_samples_warn_once_and_stop_without_a_tensorboard_logger():
    callback = SampleCallback(num_questions=2)
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, loggers=[],
                              datamodule=SimpleNamespace(val_conversations=[]))
    with pytest.warns(UserWarning, match="no TensorBoardLogger is configured") as warned:
        callback.on_validation_epoch_end(trainer, None)  # type: ignore[arg-type]
        callback.on_validation_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert len(warned) == 1 and callback.num_questions == 0


def test_sample_settings_are_checked():
    with pytest.raises(ValueError, match="samples.num_questions must be >= 0"):
        SampleCallback(num_questions=-1)
