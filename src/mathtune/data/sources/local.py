"""The `file` source: your own JSONL, JSON or Parquet file (format chosen by suffix) mapped onto the row schema.

    data:
      train: {source: file, path: data/my_problems.jsonl, fields: {question: problem}, answer_format: boxed}

`fields` maps our names (question, answer, solution) to the file's keys; unmapped names keep their own.
`answer_format` says how to get the bare gold from the answer field:
    plain   the field is the answer already ("72", "\\frac{1}{2}")
    gsm8k   the field ends with a `#### 72` line, as in GSM8K (commas are dropped from the number)
    boxed   the field contains `\\boxed{72}`; the last box wins
With gsm8k or boxed the answer field is usually a whole worked solution: when the file has no solution key of
its own, that text becomes the solution (GSM8K's `<<48/2=24>>` notes and `#### N` line removed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from mathtune.answers.extract import last_boxed
from mathtune.data.sources.base import DataError, SourceOptions, make_row, register_source

SCHEMA_FIELDS = ("question", "answer", "solution")
SUFFIXES = (".jsonl", ".json", ".parquet")
_CALC_RE = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator notes, e.g. <<48/2=24>>


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of one .jsonl/.json/.parquet file as plain dicts; a missing or malformed file raises DataError."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # pyarrow comes with `datasets`; imported late to keep startup fast

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({e})") from e
    if path.suffix not in (".jsonl", ".json"):
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:  # a binary or non-UTF-8 file: say so instead of a traceback
        raise DataError(f"{path}: not a UTF-8 text file (byte {e.start}); expected JSON or JSON lines") from None
    if not text.strip():
        raise DataError(f"{path}: empty file; expected JSON or JSON lines with one problem per row")
    if path.suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError:
            records = None  # `datasets.Dataset.to_json` writes JSON lines into .json files; try that next
        if records is not None:
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise DataError(f"{path}: expected a JSON list of objects")
            return records
    return _read_json_lines(path, text)


def _read_json_lines(path: Path, text: str) -> list[dict[str, Any]]:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {lineno}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def gsm8k_final(text: str) -> str | None:
    """The number after GSM8K's `####` marker, commas removed; None when there is no marker."""
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def gsm8k_solution(text: str, calculator_notes: bool = False) -> str:
    """GSM8K's worked solution: the text before `####`, its `<<a*b=c>>` calculator notes removed unless kept."""
    body = text.split("####", 1)[0]
    return (body if calculator_notes else _CALC_RE.sub("", body)).strip()


class FileOptions(SourceOptions):
    """Options of the `file` source."""

    path: str
    fields: dict[str, str] = {}
    answer_format: Literal["plain", "gsm8k", "boxed"] = "plain"
    meta_fields: list[str] = []  # extra file keys copied into each row's meta, e.g. [difficulty, topic]

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(fields) - set(SCHEMA_FIELDS))
        if unknown:
            raise ValueError(f"unknown schema field {unknown[0]!r}; expected some of {', '.join(SCHEMA_FIELDS)}")
        return fields


def _gold(text: str, answer_format: str) -> str | None:
    if answer_format == "gsm8k":
        return gsm8k_final(text)
    if answer_format == "boxed":
        return last_boxed(text)
    return text


@register_source("file", FileOptions)
def load_file(opts: FileOptions) -> list[dict]:
    """Read `opts.path` and map each record onto the row schema."""
    path = Path(opts.path).expanduser()
    keys = {name: opts.fields.get(name, name) for name in SCHEMA_FIELDS}
    # solution is optional unless mapped explicitly: many files carry only question and answer
    required = [keys["question"], keys["answer"]] + ([keys["solution"]] if "solution" in opts.fields else [])
    rows = []
    for i, record in enumerate(read_records(path), start=1):
        missing = [key for key in required if key not in record]
        if missing:
            have = ", ".join(sorted(record)) or "none"
            raise DataError(f"{path}: row {i}: missing key {missing[0]!r} (keys there: {have})")
        answer_text = str(record[keys["answer"]])
        answer = _gold(answer_text, opts.answer_format)
        if answer is None:
            marker = "'#### N' line" if opts.answer_format == "gsm8k" else "\\boxed{...}"
            raise DataError(f"{path}: row {i}: no {marker} in {keys['answer']!r} (answer_format: {opts.answer_format})")
        if keys["solution"] in record:
            solution = str(record[keys["solution"]] or "")
        elif opts.answer_format == "gsm8k":
            solution = gsm8k_solution(answer_text)
        else:
            solution = answer_text if opts.answer_format == "boxed" else ""
        meta = {}
        for key in opts.meta_fields:
            if key not in record:
                raise DataError(f"{path}: row {i}: missing meta key {key!r}")
            meta[key] = record[key]
        rows.append(make_row(str(record[keys["question"]]), answer, solution, "file", meta or None))
    return rows
