"""Conversations from a file or the hub, every row validated, and the train/val split.

`load_conversations` reads a hub dataset, a local parquet/json/jsonl file or a
`save_to_disk` folder with `datasets` (CSV, which holds only text, with the standard
library), and validates every row: any problem is one `DataError` naming the file and row.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mh_lightning import hub
from mh_lightning.errors import DataError
from mh_lightning.prompts import DEFAULT_STYLE, PromptFormatError, PromptStyle
from mh_lightning.resources import SAMPLE_CONVERSATIONS

log = logging.getLogger(__name__)

BUILTIN_SAMPLE = "builtin:sample"
FILE_LOADERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
OnBadRows = Literal["error", "skip"]


@dataclass(frozen=True)
class Conversation:
    question: str
    answer: str
    row: int  # 0-based row in the source, for messages and traceability

    def text(self, style: PromptStyle = DEFAULT_STYLE) -> str:
        return style.text(self.question, self.answer)


# -- loading -------------------------------------------------------------------------------
def _read_table(path: str, split: str) -> Any:
    """Load `path` into a `datasets.Dataset` without validating rows."""
    import datasets

    datasets.disable_progress_bars()
    if path == BUILTIN_SAMPLE:
        path = str(SAMPLE_CONVERSATIONS)
    local = Path(path)
    suffix = local.suffix.lower()
    try:
        if local.is_dir():
            loaded = datasets.load_from_disk(str(local))
        elif suffix in FILE_LOADERS:
            if not local.is_file():
                raise DataError(f"{path}: file not found")
            if local.stat().st_size == 0:
                raise DataError(f"{path}: the file is empty")
            if suffix == ".csv":
                loaded = _read_csv(local)
            else:
                loaded = datasets.load_dataset(FILE_LOADERS[suffix], data_files=str(local), split="train")
        elif local.suffix or local.exists() or path.startswith((".", "/")):
            known = ", ".join(FILE_LOADERS)
            raise DataError(f"{path}: unsupported file type {local.suffix!r}; use one of {known}, "
                            "a folder written by datasets' save_to_disk, or a hub dataset id")
        else:
            reason = hub.unavailable(path, "dataset")
            if reason is not None:
                raise DataError(f"cannot load dataset {path!r}: {reason}. Give a local file or folder "
                                "(data.path: my_chats.jsonl)")
            loaded = datasets.load_dataset(path, split=split)
    except DataError:
        raise
    except Exception as err:  # datasets/pyarrow raise many types; all mean "cannot read this"
        reason = _root_cause(err)
        if "corresponds to no data" in reason:  # datasets' words for a file without rows
            raise DataError(f"{path}: the file holds no rows") from err
        if suffix in (".json", ".jsonl"):
            hint = " A .json file holds a list of objects, a .jsonl file one object per line."
        elif Path(path).exists():
            hint = ""
        else:
            hint = (" If it is a hub dataset id, check the name and the network; a local file needs "
                    "one of the extensions " + ", ".join(FILE_LOADERS) + ".")
        raise DataError(f"{path}: cannot be read as a dataset ({reason}).{hint}") from err
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path}: no split {split!r}; it has {sorted(loaded)}. Set data.split.")
        loaded = loaded[split]
    return loaded


def _root_cause(err: BaseException) -> str:
    """`Type: first line` of the most telling exception in the chain: datasets wraps the useful
    one (pyarrow's "JSON parse error: ... in row 3") in a generic DatasetGenerationError."""
    chain: list[BaseException] = []
    while err is not None and len(chain) < 20:  # a chain, not a cycle
        chain.append(err)
        err = err.__cause__ or err.__context__
    useful = [e for e in chain if type(e).__name__ != "DatasetGenerationError"] or chain
    located = [e for e in useful if re.search(r"\b(row|line)\b", str(e))]
    best = (located or useful)[0]
    text = str(best).strip()
    return f"{type(best).__name__}: {text.splitlines()[0]}" if text else type(best).__name__


def _read_csv(path: Path) -> Any:
    """Every field as text, read with the standard library: CSV has no types, so "NA" stays
    "NA" and "42" stays "42", and a row with the wrong number of fields is named, not shifted
    into an index as pandas would."""
    import datasets

    csv.field_size_limit(2**31 - 1)  # long answers are fine (the default limit is 128 KiB)
    rows: list[list[str]] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next((fields for fields in reader if fields), None)
            if header is None:
                raise DataError(f"{path}: no header row, only blank lines")
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise DataError(f"{path}: the header names column {repeated[0]!r} more than once")
            for fields in reader:
                if not fields:
                    continue  # a blank line, not a row
                if len(fields) != len(header):
                    raise DataError(
                        f"{path}: row {len(rows)} (line {reader.line_num}) has {len(fields)} fields but the "
                        f"header has {len(header)}; quote fields that hold commas, quotes or newlines")
                rows.append(fields)
        except csv.Error as err:
            raise DataError(f"{path}: row {len(rows)} (line {reader.line_num}): not valid CSV: {err}") from None
    # An empty field is a missing value, as pandas reads it: "column 'answer' holds an empty value".
    return datasets.Dataset.from_dict({name: [r[i] or None for r in rows] for i, name in enumerate(header)})


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, float) and math.isnan(value):
        return "an empty value (NaN)"
    return f"a {type(value).__name__}"


def _row_pair(row: dict[str, Any], columns: Sequence[str], style: PromptStyle) -> tuple[str, str]:
    values = [row[c] for c in columns]
    for column, value in zip(columns, values, strict=True):
        if not isinstance(value, str):
            raise PromptFormatError(f"column {column!r} holds {_describe(value)}, expected text")
    if len(values) == 1:
        return style.parse(values[0])
    for column, value in zip(columns, values, strict=True):
        for tag in (style.human_tag, style.assistant_tag):
            if tag in value:  # the training text would hold it twice: which turn is which?
                raise PromptFormatError(f"column {column!r} holds the {tag} marker, which only the "
                                        "prompt template may add")
    return style.clean_pair(*values)


def check_columns(text_column: str, question_column: str | None, answer_column: str | None) -> list[str]:
    """The columns to read; contradictory settings fail here, before anything is loaded."""
    if (question_column is None) != (answer_column is None):
        given, missing = ("question", "answer") if answer_column is None else ("answer", "question")
        raise DataError(f"data.{given}_column is set but data.{missing}_column is not: set both, or "
                        "neither to read the combined data.text_column")
    if question_column is not None and question_column == answer_column:
        raise DataError(f"data.question_column and data.answer_column are both {question_column!r}: "
                        "name two different columns")
    return [text_column] if question_column is None else [question_column, answer_column]


def load_conversations(
    path: str,
    text_column: str = "text",
    question_column: str | None = None,
    answer_column: str | None = None,
    on_bad_rows: OnBadRows = "error",
    split: str = "train",
    style: PromptStyle = DEFAULT_STYLE,
) -> list[Conversation]:
    """Read and validate every row of `path`.

    Rows hold either one combined `text_column` (`<HUMAN>: ...\\n<ASSISTANT>: ...`) or a
    `question_column` and an `answer_column`. A bad row raises `DataError` naming the file,
    the 0-based row and the problem, or, with `on_bad_rows="skip"`, is logged and left out.
    """
    if on_bad_rows not in ("error", "skip"):
        raise DataError(f"data.on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
    columns = check_columns(text_column, question_column, answer_column)
    table = _read_table(path, split)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the columns are {table.column_names}. "
                        "Set data.text_column, or data.question_column and data.answer_column.")
    conversations, bad = [], []
    rows = table.select_columns(columns)
    for index in range(len(rows)):  # by index: one undecodable row must not end the iteration
        try:
            question, answer = _row_pair(rows[index], columns, style)
        except (PromptFormatError, UnicodeDecodeError) as err:
            if isinstance(err, UnicodeDecodeError):  # pyarrow keeps invalid UTF-8 from JSON files
                err = PromptFormatError(f"not valid UTF-8 text ({err.reason} at byte {err.start})")
            if on_bad_rows == "error":
                raise DataError(f"{path}: row {index}: {err}. Fix the row, or set "
                                "data.on_bad_rows: skip to train on the other rows.") from None
            bad.append((index, str(err)))
            continue
        conversations.append(Conversation(question, answer, index))
    if bad:
        shown = "; ".join(f"row {i}: {why}" for i, why in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        log.warning("%s: skipped %d bad row(s) of %d: %s%s", path, len(bad), len(table), shown, more)
    if not conversations:
        raise DataError(f"{path}: no usable conversations ({len(table)} rows, {len(bad)} bad)")
    return conversations


def split_conversations(
    conversations: Sequence[Conversation], val_fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """A train/val split that depends only on the data and the seed (same in every process)."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    n_val = 0 if val_fraction == 0 else max(1, round(val_fraction * len(order)))
    if n_val >= len(order):
        raise DataError(f"{len(order)} conversation(s) leave none to train on with "
                        f"data.val_fraction={val_fraction}")
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [conversations[i] for i in train], [conversations[i] for i in val]
