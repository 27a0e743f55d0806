"""Row filters for curation, registered by name and chosen in a recipe's source entry:

    data:
      train:
        source: magpie_reasoning
        filters:
          - {filter: equals, field: input_quality, value: excellent}
          - {filter: in, field: difficulty, values: [easy, medium]}
          - {filter: regex, field: question, pattern: "\\d"}
          - {filter: tokens, max: 4096}              # question + solution, in the model's tokens
          - {filter: has_thinking_trace}
          - {filter: response_complete}

A `field` is a row key (question, answer, solution, source) or a key of the row's `meta` (`difficulty` or
`meta.difficulty`), where each source keeps its dataset's curation fields. Every filter takes `invert: true`.
Add your own with `@register_filter("name", Options)` on a function `(options, context) -> predicate(row) -> bool`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from mathtune.data.sources.base import DataError, resolve_named
from mathtune.registry import Registry
from mathtune.schema import Strict

Predicate = Callable[[dict], bool]
_WORD_PIECE_RE = re.compile(r"\w+|[^\w\s]")


class FilterOptions(Strict):
    """Options every filter shares."""

    invert: bool = False  # keep the rows the filter would drop


@dataclass(frozen=True)
class Filter:
    """A registered filter factory and the options model its recipe entry is checked against."""

    make: Callable[[Any, "FilterContext"], Predicate]
    options: type[FilterOptions]


@dataclass
class FilterContext:
    """What a filter may need beyond its options: a token counter (the model's tokenizer when it is known)."""

    count_tokens: Callable[[str], int]


FILTERS: Registry[Filter] = Registry("filter")


def register_filter(name: str, options: type[FilterOptions] = FilterOptions):
    """Decorator: register `make(options, context) -> predicate` as filter `name`."""

    def deco(fn):
        FILTERS.register(name)(Filter(make=fn, options=options))
        return fn

    return deco


def approx_tokens(text: str) -> int:
    """A tokenizer-free length: words and punctuation marks (used only when no tokenizer is at hand)."""
    return len(_WORD_PIECE_RE.findall(text))


def tokenizer_counter(tokenizer) -> Callable[[str], int]:
    """Count tokens with `tokenizer` (no special tokens: only the text's own length)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def field_value(row: dict, field: str) -> Any:
    """A row key, else a key of its meta (`meta.` prefix optional); None when neither has it."""
    if field in row and field != "meta":
        return row[field]
    meta = row.get("meta") or {}
    return meta.get(field.removeprefix("meta."))


def has_field(row: dict, field: str) -> bool:
    """Whether the row (or its meta) has `field` at all."""
    return (field in row and field != "meta") or field.removeprefix("meta.") in (row.get("meta") or {})


def parse_filter(spec: Any, where: str) -> tuple[str, Filter, FilterOptions]:
    """Validate one `{filter: NAME, ...options}` entry; problems raise a one-line DataError."""
    if not isinstance(spec, dict):
        raise DataError(f"{where}: expected a mapping like {{filter: equals, field: ..., value: ...}}, got {spec!r}")
    name, entry, opts = resolve_named(spec, "filter", FILTERS, where)
    return name, entry, opts


def describe_filter(name: str, opts: FilterOptions) -> str:
    """A short label for statistics, e.g. `equals input_quality=excellent`."""
    shown = opts.model_dump(exclude_defaults=True)
    shown.pop("invert", None)
    text = " ".join(f"{k}={v}" for k, v in shown.items())
    return ("not " if opts.invert else "") + (f"{name} {text}" if text else name)


# --- built-in filters -------------------------------------------------------------------------------------------


class EqualsOptions(FilterOptions):
    """Keep rows whose field equals `value` (compared as text, so 3 and "3" match)."""

    field: str
    value: Any


@register_filter("equals", EqualsOptions)
def equals(opts: EqualsOptions, ctx: FilterContext) -> Predicate:
    """Field equals value."""
    want = str(opts.value)
    return lambda row: field_value(row, opts.field) is not None and str(field_value(row, opts.field)) == want


class InOptions(FilterOptions):
    """Keep rows whose field is one of `values`."""

    field: str
    values: list[Any] = Field(min_length=1)


@register_filter("in", InOptions)
def one_of(opts: InOptions, ctx: FilterContext) -> Predicate:
    """Field is one of values."""
    wanted = {str(v) for v in opts.values}
    return lambda row: field_value(row, opts.field) is not None and str(field_value(row, opts.field)) in wanted


class RegexOptions(FilterOptions):
    """Keep rows where `pattern` is found in the field (re.search)."""

    field: str
    pattern: str
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"not a valid regular expression ({e})") from None
        return pattern


@register_filter("regex", RegexOptions)
def regex(opts: RegexOptions, ctx: FilterContext) -> Predicate:
    """Pattern found in field."""
    rx = re.compile(opts.pattern, re.IGNORECASE if opts.ignore_case else 0)
    return lambda row: rx.search(str(field_value(row, opts.field) or "")) is not None


class TokensOptions(FilterOptions):
    """Keep rows whose length in tokens (of the fields joined) is within [min, max]."""

    fields: list[str] = ["question", "solution"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, gt=0)


@register_filter("tokens", TokensOptions)
def tokens(opts: TokensOptions, ctx: FilterContext) -> Predicate:
    """Token length within bounds."""
    if opts.min is None and opts.max is None:
        raise DataError("tokens filter: give min, max or both")

    def keep(row: dict) -> bool:
        n = ctx.count_tokens("\n".join(str(field_value(row, f) or "") for f in opts.fields))
        return (opts.min is None or n >= opts.min) and (opts.max is None or n <= opts.max)

    return keep


class TraceOptions(FilterOptions):
    """Where the thinking trace lives and how it is delimited (DeepSeek-R1 style by default)."""

    field: str = "solution"
    open: str = "<think>"
    close: str = "</think>"


@register_filter("has_thinking_trace", TraceOptions)
def has_thinking_trace(opts: TraceOptions, ctx: FilterContext) -> Predicate:
    """A non-empty `<think>...</think>` trace (closed) in the field."""

    def keep(row: dict) -> bool:
        text = str(field_value(row, opts.field) or "")
        start = text.find(opts.open)
        end = text.find(opts.close, start + len(opts.open)) if start >= 0 else -1
        return end >= 0 and bool(text[start + len(opts.open) : end].strip())

    return keep


class CompleteOptions(TraceOptions):
    """A response is complete when an opened trace is closed, some text follows it, and (by default) the row's
    gold answer could be read from it: a generation cut at its token limit fails at least one of these."""

    require_answer: bool = True


@register_filter("response_complete", CompleteOptions)
def response_complete(opts: CompleteOptions, ctx: FilterContext) -> Predicate:
    """The response was not cut off."""

    def keep(row: dict) -> bool:
        text = str(field_value(row, opts.field) or "")
        start = text.find(opts.open)
        if start >= 0:
            end = text.rfind(opts.close)
            if end < start:
                return False
            text = text[end + len(opts.close) :]
        if not text.strip():
            return False
        return bool(str(row.get("answer", "")).strip()) or not opts.require_answer

    return keep


def build_predicates(specs: list, ctx: FilterContext, where: str) -> list[tuple[str, Predicate, list[str]]]:
    """(label, predicate, fields it reads) for each filter entry, in order."""
    out = []
    for i, spec in enumerate(specs):
        name, entry, opts = parse_filter(spec, f"{where}[{i}]")
        try:
            pred = entry.make(opts, ctx)
        except DataError as e:
            raise DataError(f"{where}[{i}]: {e}") from None
        keep = pred if not opts.invert else (lambda row, p=pred: not p(row))
        fields = [f for f in (getattr(opts, "field", None),) if f] + list(getattr(opts, "fields", []))
        out.append((describe_filter(name, opts), keep, fields))
    return out
