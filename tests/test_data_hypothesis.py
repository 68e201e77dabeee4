"""Property: whatever file the loader gets, it returns valid conversations or raises one
`DataError` naming the file (and the row, when a row is at fault). Never another exception,
never a row dropped without a word."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mh_lightning.data import Conversation, DataError, load_conversations
from mh_lightning.prompts import DEFAULT_STYLE, PromptFormatError

pytestmark = pytest.mark.slow  # hundreds of generated files

FORMATS = (".jsonl", ".json", ".csv", ".parquet")
COLUMNS = ("text", "question", "answer", "other")
TAGS = (DEFAULT_STYLE.human_tag, DEFAULT_STYLE.assistant_tag)
SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

# Text assembled from the pieces that break parsers: markers (right, wrong case, full width),
# newlines of every kind, quotes and commas, invisible and right-to-left characters, "NA".
PIECES = ["<HUMAN>:", "<ASSISTANT>:", "<human>:", "＜HUMAN＞:", "\n", "\r\n", "\r", "\u2028", " ", "\t",
          "hi", "How do I sleep?", "Try a routine.", ",", '"', "'", "NA", "None", "null", "\x00", "\u200c",
          "\u202e", "\ufeff", "é", "😀", "\\", "{", "}"]
texts = st.one_of(
    st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=8).map("".join),
    st.tuples(st.text(max_size=20), st.text(max_size=20)).map(lambda qa: f"<HUMAN>: {qa[0]}\n<ASSISTANT>: {qa[1]}"),
    st.integers(2_000, 60_000).map(lambda n: f"<HUMAN>: {'why ' * (n // 4)}\n<ASSISTANT>: because"),  # huge rows
)
WORD_CHARS = "abcé😀 ,.?'\"\n\t\u200c\u202e\u2028\x00\\{}"
words = st.text(st.sampled_from(WORD_CHARS), min_size=1, max_size=30).filter(str.strip)
good_texts = st.tuples(words, words).map(lambda qa: f"<HUMAN>: {qa[0]}\n<ASSISTANT>: {qa[1]}")
good_rows = st.fixed_dictionaries({"text": good_texts, "question": words, "answer": words}, optional={"other": texts})
any_rows = st.dictionaries(st.sampled_from(COLUMNS), texts, max_size=4)
values = st.one_of(texts, good_texts, st.none(), st.integers(-2**70, 2**70), st.floats(), st.booleans(),
                   st.lists(st.integers(0, 9), max_size=2), st.dictionaries(st.just("k"), st.integers(), max_size=1))
# Mostly good tables, some with a bad row somewhere, some anything at all.
string_tables = st.one_of(st.lists(good_rows, max_size=6), st.lists(good_rows | any_rows, max_size=6),
                          st.lists(any_rows, max_size=6))
mixed_tables = st.lists(good_rows | st.dictionaries(st.sampled_from(COLUMNS), values, max_size=4), max_size=6)
modes = st.sampled_from([{}, {"question_column": "question", "answer_column": "answer"}])
names = itertools.count()  # a fresh file name per example: datasets caches by path and mtime


# -- writing tables -------------------------------------------------------------------------
def header_of(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def serialize(rows: list[dict[str, Any]], suffix: str) -> bytes:
    if suffix == ".jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    if suffix == ".json":
        return json.dumps(rows, ensure_ascii=False).encode()
    if suffix == ".csv":  # CSV has no types: every value is written as its text
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        header = header_of(rows)
        writer.writerow(header)
        writer.writerows([["" if row.get(k) is None else str(row[k]) for k in header] for row in rows])
        return out.getvalue().encode()
    columns = {key: [row.get(key) for row in rows] for key in header_of(rows)}
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(pa.table(columns), sink)
    except (pa.ArrowException, OverflowError):  # types parquet cannot hold together: store them as text
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({k: [None if v is None else str(v) for v in c] for k, c in columns.items()}), sink)
    return sink.getvalue().to_pybytes()


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / f"{next(names)}-{name}"
    path.write_bytes(content)
    return path


# -- the property ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data_files")


def load(path: Path, mode: dict[str, str], on_bad_rows: str = "error") -> list[Conversation] | DataError:
    """The loader's outcome; any exception but DataError fails the test right here."""
    try:
        conversations = load_conversations(str(path), on_bad_rows=on_bad_rows, **mode)
        event("conversations")
        return conversations
    except DataError as err:
        message = str(err)
        assert str(path) in message, f"the error does not name the file: {message}"
        for row in re.findall(r"\brow(?:s)? (\S+)", message):
            assert re.match(r"\d+", row), f"'row' without its number: {message}"
        event("a row named" if re.search(r": row \d+", message) else "a file-level error")
        return err


def expected_pair(row: dict[str, Any], mode: dict[str, str]) -> tuple[str, str]:
    """The (question, answer) a valid row gives; PromptFormatError for an invalid one."""
    if not mode:
        return DEFAULT_STYLE.parse(row.get("text") or "")
    question, answer = row.get("question") or "", row.get("answer") or ""
    if any(tag in value for tag in TAGS for value in (question, answer)):
        raise PromptFormatError("a marker inside a column")
    return DEFAULT_STYLE.clean_pair(question, answer)


@SETTINGS
@given(rows=string_tables, suffix=st.sampled_from(FORMATS), mode=modes)
def test_text_tables_give_every_row_or_name_the_first_bad_one(files, rows, suffix, mode):
    path = write(files, f"table{suffix}", serialize(rows, suffix))
    outcome = load(path, mode)
    needed = ["text"] if not mode else ["question", "answer"]
    present = set(header_of(rows))
    if not rows or not present.issuperset(needed):
        assert isinstance(outcome, DataError), "no rows, or no such column, must be an error"
        return
    pairs, first_bad = [], None
    for index, row in enumerate(rows):
        try:
            pairs.append(expected_pair(row, mode))
        except PromptFormatError:
            first_bad = index
            break
    if first_bad is not None:
        assert isinstance(outcome, DataError) and f": row {first_bad}: " in str(outcome), outcome
    else:
        assert not isinstance(outcome, DataError), outcome
        assert [(c.question, c.answer, c.row) for c in outcome] == [(q, a, i) for i, (q, a) in enumerate(pairs)]


malformed = st.one_of(
    st.tuples(mixed_tables, st.sampled_from(FORMATS)).map(lambda t: ("table", t[0], t[1], serialize(*t))),
    # cut short, bytes that are not UTF-8, random bytes, nothing at all, whitespace
    st.tuples(mixed_tables, st.sampled_from(FORMATS), st.floats(0, 1)).map(
        lambda t: ("cut", t[0], t[1], serialize(t[0], t[1])[: int(len(serialize(t[0], t[1])) * t[2])])),
    st.tuples(string_tables, st.sampled_from(FORMATS[:3]), st.binary(min_size=1, max_size=3)).map(
        lambda t: ("bytes", t[0], t[1], serialize(t[0], t[1]).replace(b"h", b"\xff" + t[2], 1))),
    st.tuples(st.binary(max_size=200), st.sampled_from([*FORMATS, ".txt", ".xlsx", "", ".CSV", ".json.gz"])).map(
        lambda t: ("raw", [], t[1], t[0])),
    st.sampled_from(FORMATS).map(lambda s: ("raw", [], s, b" \n\t\n")),
    st.sampled_from(FORMATS).map(lambda s: ("folder", [], s, b"")),
    st.just(("raw", [], ".jsonl", b'{"text": "<HUMAN>: a\\ud800\\n<ASSISTANT>: b"}\n')),  # lone surrogate
)


@SETTINGS
@given(case=malformed, mode=modes, on_bad_rows=st.sampled_from(["error", "skip"]))
def test_malformed_files_give_conversations_or_a_data_error_naming_the_file(files, caplog, case, mode, on_bad_rows):
    kind, rows, suffix, content = case
    if kind == "folder":  # a folder where a file is expected: cannot be read as one
        path = files / f"{next(names)}-folder{suffix}"
        path.mkdir()
    else:
        path = write(files, f"data{suffix}", content)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mh_lightning.data"):
        outcome = load(path, mode, on_bad_rows)
    if isinstance(outcome, DataError):
        return
    assert outcome and all(isinstance(c, Conversation) for c in outcome)
    for c in outcome:
        assert c.question == c.question.strip() and c.question and c.answer == c.answer.strip() and c.answer
        assert not any(tag in part for tag in TAGS for part in (c.question, c.answer))
    assert [c.row for c in outcome] == sorted({c.row for c in outcome})
    if kind == "table":  # the row count is known: every row is kept, or its leaving is reported
        kept = len(outcome)
        if on_bad_rows == "error":
            assert [c.row for c in outcome] == list(range(len(rows)))
        elif kept < len(rows):
            assert f"skipped {len(rows) - kept} bad row(s) of {len(rows)}" in caplog.text
        else:
            assert kept == len(rows)
