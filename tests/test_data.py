import json
import logging

import pandas as pd
import pytest
import torch
from conftest import COUNSEL_CSV, REAL_PARQUET, needs_real_data

from mh_lightning.data import (
    IGNORE_INDEX,
    Conversation,
    DataError,
    MentalHealthDataModule,
    load_conversations,
    pad_batch,
    split_conversations,
    tokenize_conversation,
)
from mh_lightning.model import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin:tiny-falcon")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- loading -------------------------------------------------------------------------------
def test_shipped_sample_loads_32_conversations():
    conversations = load_conversations("builtin:sample")
    assert len(conversations) == 32
    assert conversations[0] == Conversation(
        "Hello",
        "Hello, and welcome. I'm here to listen and to share some general information about mental "
        "health and wellbeing. What's on your mind today?",
        0,
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_question_and_answer_columns_in_every_format(tmp_path, suffix):
    frame = pd.DataFrame({"q": [" Why?\n", "How?"], "a": ["Because\nof this. ", "Like so."]})
    path = tmp_path / f"data{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False), ".parquet": lambda: frame.to_parquet(path),
     ".json": lambda: frame.to_json(path, orient="records"),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[suffix]()
    got = load_conversations(str(path), question_column="q", answer_column="a")
    assert got == [Conversation("Why?", "Because\nof this.", 0), Conversation("How?", "Like so.", 1)]


def test_save_to_disk_folder(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["<HUMAN>: a\n<ASSISTANT>: b"]}).save_to_disk(tmp_path / "ds")
    assert load_conversations(str(tmp_path / "ds")) == [Conversation("a", "b", 0)]


def test_a_malformed_row_names_file_row_and_fix(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "<HUMAN>: a\n<ASSISTANT>: b"},
                                              {"text": "<HUMAN>: a\n<ASSISTANT>: b"},
                                              {"text": "<HUMAN>: only a question"}])
    with pytest.raises(DataError) as err:
        load_conversations(str(path))
    assert str(err.value) == (f"{path}: row 2: missing the <ASSISTANT>: marker. Fix the row, or set "
                              "data.on_bad_rows: skip to train on the other rows.")


def test_non_string_value_is_named(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"q": ["a", "b"], "a": ["x", None]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"d\.csv: row 1: column 'a' holds an empty value, expected text"):
        load_conversations(str(path), question_column="q", answer_column="a")


def test_skip_trains_on_the_rest_and_logs_which_rows(tmp_path, caplog):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "<HUMAN>: a\n<ASSISTANT>: b"},
                                              {"text": "<HUMAN>: \n<ASSISTANT>: b"},
                                              {"text": "<HUMAN>: c\n<ASSISTANT>: d <ASSISTANT>: e"}])
    with caplog.at_level(logging.WARNING, logger="mh_lightning.data"):
        got = load_conversations(str(path), on_bad_rows="skip")
    assert got == [Conversation("a", "b", 0)]
    assert (f"{path}: skipped 2 bad row(s) of 3: row 1: the question is empty; "
            "row 2: the <ASSISTANT>: marker appears 2 times (expected once)") in caplog.text


def test_missing_column_and_missing_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"body": "x"}])
    with pytest.raises(DataError, match=r"d\.jsonl: no column 'text'; the columns are \['body'\]"):
        load_conversations(str(path))
    with pytest.raises(DataError, match=r"nope\.parquet: file not found"):
        load_conversations(str(tmp_path / "nope.parquet"))


@needs_real_data
@pytest.mark.slow
def test_real_datasets_load_in_full():
    assert len(load_conversations(str(REAL_PARQUET))) == 172
    counsel = load_conversations(str(COUNSEL_CSV), question_column="questionText", answer_column="answerText")
    assert len(counsel) == 2129
    assert all(c.question and c.answer and c.answer == c.answer.strip() for c in counsel)


# -- split ---------------------------------------------------------------------------------
def test_split_is_deterministic_disjoint_and_complete():
    conversations = [Conversation(f"q{i}", f"a{i}", i) for i in range(50)]
    train, val = split_conversations(conversations, 0.1, seed=7)
    assert (train, val) == split_conversations(conversations, 0.1, seed=7)
    assert len(val) == 5 and len(train) == 45
    assert sorted(c.row for c in train + val) == list(range(50))
    assert split_conversations(conversations, 0.1, seed=8)[1] != val


# -- tokenization and masking --------------------------------------------------------------
def test_label_mask_is_exact(tokenizer):
    conversation = Conversation("Hi", "Hello there.", 0)
    prompt = tokenizer("<HUMAN>: Hi\n<ASSISTANT>:", add_special_tokens=False)["input_ids"]
    answer = tokenizer(" Hello there.", add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    example = tokenize_conversation(conversation, tokenizer, max_length=512)
    assert example.input_ids == prompt + answer + [eos]
    assert example.labels == [IGNORE_INDEX] * len(prompt) + answer + [eos]
    assert not example.truncated

    short = tokenize_conversation(Conversation("Hi", "Ok", 1), tokenizer, max_length=512)
    batch = pad_batch([example, short], pad_id=tokenizer.pad_token_id)
    assert tokenizer.pad_token_id == eos  # pad = EOS: masking must go by position
    width = len(example.input_ids)
    pad = width - len(short.input_ids)
    assert batch["labels"][1].tolist() == short.labels + [IGNORE_INDEX] * pad
    assert batch["attention_mask"][1].tolist() == [1] * len(short.input_ids) + [0] * pad
    assert batch["input_ids"][1].tolist() == short.input_ids + [eos] * pad
    assert batch["labels"][1, len(short.input_ids) - 1].item() == eos  # the EOS itself is trained
    assert set(batch) == {"input_ids", "attention_mask", "labels"}  # no token_type_ids


def test_train_on_prompt_and_truncation(tokenizer):
    conversation = Conversation("Hi", "Hello there.", 0)
    full = tokenize_conversation(conversation, tokenizer, max_length=512, train_on_prompt=True)
    assert full.labels == full.input_ids
    cut = tokenize_conversation(conversation, tokenizer, max_length=5)
    assert cut.truncated and cut.input_ids == full.input_ids[:5] and len(cut.labels) == 5


def test_datamodule_batches_and_logs_truncation(tmp_path, caplog):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"<HUMAN>: q{i}\n<ASSISTANT>: {'word ' * (i * 10 + 1)}"}
                                              for i in range(10)])
    dm = MentalHealthDataModule(path=str(path), max_length=40, batch_size=4, val_fraction=0.2)
    dm.connect(load_tokenizer("builtin:tiny-falcon"))
    with caplog.at_level(logging.WARNING, logger="mh_lightning.data"):
        dm.setup("fit")
    assert "examples are longer than max_length=40 and were cut" in caplog.text
    assert len(dm.train_examples) == 8 and len(dm.val_examples) == 2
    batches = list(dm.train_dataloader())
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4]
    for b in batches:  # padded to the longest example of each batch, not to max_length
        assert b["input_ids"].shape[1] == int(b["attention_mask"].sum(1).max())
        assert b["input_ids"].dtype == torch.long
