"""The crisis classifier's ONNX Runtime forward against the torch one: same weights, same ids, same
logits within float32 rounding, same decisions on the whole labelled set; the torch fallback when
onnxruntime is missing; batches by length; a cold start that imports neither torch nor transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mh_lightning.safety import classifier as classifier_module
from mh_lightning.safety import detector
from mh_lightning.safety.classifier import (
    ARTEFACT,
    BACKEND_ENV,
    CrisisClassifier,
    choose_backend,
    length_batches,
    load_base,
    model_dir,
    model_input,
    pieces,
    read_metadata,
)
from mh_lightning.safety.runtime import OnnxForward, crisis_state

REPO = Path(__file__).resolve().parents[1]
EVAL_TEXTS = [json.loads(line)["text"] for line in
              (REPO / "tests" / "data" / "safety_eval.jsonl").read_text(encoding="utf-8").splitlines()]
# |ONNX Runtime logit - torch logit|, float32 both: the same products summed in another order (MLAS
# and MKL block the 384- and 1536-term dot products differently) through 6 layers and 13 LayerNorms.
# Measured on the 3,203 pieces of the labelled set: at most 1.5e-5 (Xeon, AVX-512) for logits of up
# to 19.2 in size; float32's spacing there is 1.9e-6, so the bound is ~50 ulps: 7x the measured
# worst, and 30x below the closest any decision of the set comes to a threshold (4e-4 in probability,
# over 3e-3 in logit at temperature 1.65; the decisions test below checks the retrained artefact).
LOGIT_TOLERANCE = 1e-4


def probability_tolerance(classifier: CrisisClassifier) -> float:
    """LOGIT_TOLERANCE through sigmoid(logit / temperature), whose slope is at most 1 / (4 temperature)."""
    return LOGIT_TOLERANCE / (4 * classifier.temperature)


def _padded(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    longest = max(map(len, rows))
    ids, mask = np.zeros((len(rows), longest), np.int64), np.zeros((len(rows), longest), np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


@pytest.fixture(scope="module")
def torch_classifier() -> CrisisClassifier:
    return CrisisClassifier.load(backend="torch")


@pytest.fixture(scope="module")
def onnx_classifier() -> CrisisClassifier:
    return CrisisClassifier.load(backend="onnxruntime")


def test_length_batches_bound_padding_and_keep_every_piece_once() -> None:
    lengths = [64, 20, 22, 21, 64, 5]
    assert length_batches(lengths) == [[5], [1, 3, 2], [0, 4]]
    assert length_batches([7, 7, 7]) == [[0, 1, 2]]
    assert length_batches([]) == []
    for batch in length_batches([3, 64, 9, 40, 41, 12, 13, 64, 30]):
        real = sum([3, 64, 9, 40, 41, 12, 13, 64, 30][i] for i in batch)
        assert len(batch) * max([3, 64, 9, 40, 41, 12, 13, 64, 30][i] for i in batch) <= 1.25 * real


def test_backend_choice_and_its_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert choose_backend() == "onnxruntime" and choose_backend("torch") == "torch"
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert choose_backend() == "torch"
    monkeypatch.setenv(BACKEND_ENV, "tpu")
    with pytest.raises(ValueError, match=f"{BACKEND_ENV}='tpu': use onnxruntime or torch"):
        choose_backend()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    monkeypatch.setenv(BACKEND_ENV, "onnxruntime")
    with pytest.raises(RuntimeError, match="onnxruntime or onnx is not installed"):
        choose_backend()
    assert capsys.readouterr().err == ""


def test_without_onnxruntime_the_torch_fallback_is_chosen_and_said_once(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    classifier_module._say_torch_fallback.cache_clear()
    assert [choose_backend(), choose_backend()] == ["torch", "torch"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mh_lightning.safety: onnxruntime is not installed, so the "
                                                   "crisis classifier runs on torch")


def test_an_artefact_that_does_not_fit_is_refused_with_the_fix(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    frozen = read_metadata(ARTEFACT)["frozen_layers"]
    tensors = load_file(ARTEFACT)
    del tensors["head.bias"]
    save_file(tensors, tmp_path / "bad.safetensors")
    with pytest.raises(RuntimeError, match=r"bad.safetensors: tensors \['head.bias'\] do not fit the model; "
                                           r"rebuild it with python scripts/train_safety_classifier.py"):
        crisis_state(model_dir(), tmp_path / "bad.safetensors", frozen)
    other = frozen - 1 if frozen > 0 else 1  # one layer more or less than the artefact was trained with
    with pytest.raises(RuntimeError, match=rf"tensors \['head.bias', 'layers.{min(frozen, other)}\."):
        crisis_state(model_dir(), tmp_path / "bad.safetensors", other)


@pytest.mark.slow
def test_the_fallback_loads_on_torch_and_scores_as_onnxruntime_does(
        monkeypatch: pytest.MonkeyPatch, onnx_classifier: CrisisClassifier) -> None:
    texts = EVAL_TEXTS[:40]
    expected = onnx_classifier.probabilities(texts)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    fallback = CrisisClassifier.load()
    assert fallback.backend == "torch" and onnx_classifier.backend == "onnxruntime"
    assert np.abs(np.array(fallback.probabilities(texts)) - expected).max() <= probability_tolerance(fallback)


@pytest.mark.slow
def test_the_fast_tokenizer_gives_transformers_ids(onnx_classifier: CrisisClassifier) -> None:
    tokenizer = load_base()[0]
    texts = [piece.text for text in EVAL_TEXTS for piece in pieces(text)] + [" ".join(EVAL_TEXTS[:30])]
    expected = tokenizer([model_input(t) for t in texts], truncation=True, max_length=64)["input_ids"]
    found = onnx_classifier.token_ids(texts)
    assert found == expected and max(map(len, found)) == 64  # the last text is truncated


@pytest.mark.slow
def test_the_graph_reads_the_torch_model_weights_and_gives_its_logits_on_a_padded_batch(
        torch_classifier: CrisisClassifier) -> None:
    model = torch_classifier.model
    state = {name: tensor.numpy() for name, tensor in model.state_dict().items()}
    from_files = crisis_state(model_dir(), ARTEFACT, model.frozen)
    assert sorted(from_files) == sorted(state)  # all 6 layers, embeddings and both heads
    assert all(np.array_equal(from_files[name], state[name]) for name in state)
    forward = OnnxForward(state, model.frozen, heads=12, eps=1e-12)

    texts = EVAL_TEXTS[::37][:64]  # 64 real messages of 3 to 64 tokens, padded together
    rows = torch_classifier.token_ids(texts)
    ids, mask = _padded(rows)
    assert mask.sum(1).min() < mask.shape[1] / 4  # a short message among long ones: the mask matters
    want, got = torch_classifier.forward.logits(ids, mask), forward.logits(ids, mask)
    assert got.shape == (64, 5) and np.abs(got - want).max() <= LOGIT_TOLERANCE
    want_answer, got_answer = torch_classifier.forward.output_logit(ids, mask), forward.output_logit(ids, mask)
    assert got_answer.shape == (64,) and np.abs(got_answer - want_answer).max() <= LOGIT_TOLERANCE
    alone = np.concatenate([forward.logits(*_padded([row])) for row in rows[:8]])
    assert np.abs(alone - got[:8]).max() <= LOGIT_TOLERANCE  # padding changes nothing


@pytest.mark.slow
def test_both_backends_make_the_same_decisions_on_the_labelled_set(
        monkeypatch: pytest.MonkeyPatch, torch_classifier: CrisisClassifier,
        onnx_classifier: CrisisClassifier) -> None:
    decisions = {}
    for loaded in (onnx_classifier, torch_classifier):
        monkeypatch.setattr(detector, "load_classifier", lambda loaded=loaded: loaded)
        decisions[loaded.backend] = [detector.assess(text) for text in EVAL_TEXTS]
    pairs = list(zip(decisions["onnxruntime"], decisions["torch"], strict=True))
    assert [(a.is_crisis, a.category) for a, _ in pairs] == [(b.is_crisis, b.category) for _, b in pairs]
    assert max(abs(a.score - b.score) for a, b in pairs) <= probability_tolerance(onnx_classifier)


@pytest.mark.slow
def test_a_cold_start_imports_neither_torch_nor_transformers() -> None:
    code = ("import sys; from mh_lightning.safety import assess, load_classifier; print(assess('hello').is_crisis, "
            "load_classifier().backend, [m for m in ('torch', 'transformers') if m in sys.modules])")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout == "False onnxruntime []\n"


def test_onnxruntime_writes_nothing_in_the_users_home(tmp_path: Path) -> None:
    """The onnxruntime wheel's telemetry writes a device id under ~/.cache/Microsoft/DeveloperTools/
    (and uploads events) unless ORT_DISABLE_TELEMETRY=1 is set before its import: runtime.no_telemetry."""
    home = tmp_path / "home"
    home.mkdir()
    code = ("from mh_lightning.safety import assess, screen_output; "
            "print(assess('hi').is_crisis, screen_output('ok').score)")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.startswith("False ") and list(home.rglob("*")) == []
