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

from collections.abc import Mapping
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


def resolve_named(spec: Any, key: str, registry: Any, where: str) -> tuple[str, Any, Any]:
    """Validate a `{KEY: NAME, ...options}` entry against `registry` (entries carry `.options`); -> (name, entry, opts).

    Data sources and curation filters are both written this way in recipes; one DataError line names what is wrong.
    """
    from pydantic import ValidationError

    from mathtune.registry import UnknownNameError
    from mathtune.schema import describe_error

    if not isinstance(spec, Mapping):
        raise DataError(f"{where}: expected a mapping with a {key!r} key, got {spec!r}")
    name = spec.get(key)
    if name is None:
        raise DataError(f"{where}.{key}: missing; expected one of: {', '.join(registry.names())}")
    if not isinstance(name, str):
        raise DataError(f"{where}.{key}: expected a string, got {name!r}")
    try:
        entry = registry.get(name)
    except UnknownNameError as e:
        raise DataError(f"{where}.{key}: {e}") from None
    try:
        opts = entry.options.model_validate({k: v for k, v in spec.items() if k != key})
    except ValidationError as e:
        raise DataError(describe_error(e, where, entry.options)) from None
    return name, entry, opts
