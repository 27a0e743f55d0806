"""The data-source registry: every loader turns its dataset into rows of one schema.

A row is a plain dict (what `datasets` and TRL take):
    question: str   the problem as the user would ask it
    answer:   str   the gold final answer, bare ("18", "\\frac{1}{2}"); "" when the source has none
    solution: str   step-by-step reasoning as published, without a separate final-answer marker line
                    (GSM8K's "#### N" is cut off; an inline \\boxed{} stays); "" when the source has none
    source:   str   the registered source name
    meta:     dict  optional, JSON-able extras (reasoning-gym keeps its entry here for `score_answer`)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from mathtune.errors import UserError
from mathtune.registry import Registry

ROW_FIELDS = ("question", "answer", "solution", "source")


class SourceOptions(BaseModel):
    """Base of every source's options; a recipe's data entry is validated against its source's subclass."""

    model_config = ConfigDict(extra="forbid")
    limit: int | None = None  # keep the first N rows after loading


class DataError(UserError, ValueError):
    """A user-facing data problem: the message names the file, key or row and what was expected."""


@dataclass(frozen=True)
class Source:
    """A registered loader and the options model its recipe entry is checked against."""

    load: Callable[[Any], list[dict]]
    options: type[SourceOptions]


SOURCES: Registry[Source] = Registry("data source")


def register_source(name: str, options: type[SourceOptions] = SourceOptions):
    """Decorator: register `fn(options) -> list[row]` as data source `name`."""

    def deco(fn):
        SOURCES.register(name)(Source(load=fn, options=options))
        return fn

    return deco


def make_row(question: str, answer: str, solution: str, source: str, meta: dict | None = None) -> dict:
    """Build one row of the common schema (strings stripped; `meta` only when given)."""
    row = {"question": question.strip(), "answer": str(answer).strip(), "solution": solution.strip(), "source": source}
    if meta:
        row["meta"] = meta
    return row
