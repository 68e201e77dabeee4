"""`python -m mh_lightning.preview`: marked spans, token counts, truncation and length summary."""

from __future__ import annotations

import re

import pytest
from conftest import REAL_PARQUET, TINY_CONFIG, needs_real_data

from mh_lightning.data import IGNORE_INDEX, MentalHealthDataModule
from mh_lightning.model import load_tokenizer
from mh_lightning.preview import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(TINY_CONFIG), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_preview_of_the_sample_marks_exactly_the_trained_tokens(capsys):
    code, out, _ = run(capsys, "-n", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "--- row 0 (train): prompt 9 + answer 44 (with EOS) = 53 tokens"
    assert lines[-4:] == [
        "32 examples (28 train, 4 val) from builtin:sample, tokenizer builtin:tiny-falcon",
        "tokens per example: min 50, median 130, max 171, total 4051",
        "truncated at max_length=256: 0 of 32 examples (0 tokens cut in all)",
        "Tokens that carry loss are marked [[like this]]; the prompt is context only.",
    ]
    # The marked span is what the data module trains on: the answer and EOS, nothing else.
    data = MentalHealthDataModule(path="builtin:sample", val_fraction=0.125, max_length=256)
    data.connect(load_tokenizer("builtin:tiny-falcon"))
    data.setup()
    example = data.train_examples[0]
    trained = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    marked = re.findall(r"\[\[(.*?)\]\]", out, re.DOTALL)
    assert marked[0] == data.tokenizer.decode(trained)
    assert marked[0].endswith("<|endoftext|>")
    assert marked[1:] == ["like this"]  # the legend; no other span is marked
    assert out.startswith("--- row 0 (train): prompt 9 + answer 44 (with EOS) = 53 tokens\n"
                          "<HUMAN>: Hello\n<ASSISTANT>:[[ ")


def test_overrides_win_over_the_config_and_truncation_is_counted(capsys):
    code, out, _ = run(capsys, "-n", "2", "--data.max_length", "40", "--data.val_fraction", "0.25")
    assert code == 0
    assert "[cut at max_length=40: the last 13 tokens are not seen]" in out
    assert "32 examples (24 train, 8 val) from builtin:sample" in out
    assert "truncated at max_length=40: 32 of 32 examples (2771 tokens cut in all)" in out  # 4051 - 32 * 40
    assert out.count("--- row ") == 2


def test_train_on_prompt_marks_the_prompt_too(capsys):
    _, out, _ = run(capsys, "-n", "1", "--data.train_on_prompt", "true")
    assert "[[<HUMAN>: Hello\n<ASSISTANT>: Hello," in out
    assert "the prompt is trained too (train_on_prompt)." in out


def test_unknown_config_key_names_the_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("trainer: {max_epochs: 1}\ndata: {pathh: x.parquet}\n")
    assert main(["--config", str(config)]) == 2
    assert "data.pathh is not a setting of data" in capsys.readouterr().err


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "--data.path", str(tmp_path / "none.parquet"))
    assert code == 2
    assert err == f"error: {tmp_path / 'none.parquet'}: file not found\n"


@needs_real_data
@pytest.mark.slow
def test_preview_of_the_real_dataset(capsys):
    code, out, _ = run(capsys, "--data.path", str(REAL_PARQUET), "-n", "2")
    assert code == 0
    assert f"172 examples (150 train, 22 val) from {REAL_PARQUET}, tokenizer builtin:tiny-falcon" in out
    # Lengths under the tiny model's tokenizer (Falcon's own gives 47..523, 37,750 in all).
    assert "tokens per example: min 59, median 378.5, max 967, total 70388" in out
    assert "truncated at max_length=256: 119 of 172 examples" in out
    assert out.count("[[") == 3 and "--- row 1 (train): prompt 27 + answer 940 (with EOS) = 967 tokens" in out
