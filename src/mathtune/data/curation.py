"""Training-data curation: filter and stratify each source, dedup, decontaminate against the evaluation sets, mix.

    data:
      train:                                   # one source entry, or a list of them with weights
        - source: magpie_reasoning
          filters: [{filter: equals, field: input_quality, value: excellent}, {filter: has_thinking_trace}]
          stratify: {field: difficulty, size: 6000}        # or counts: {easy: 2000, ...} or proportions + size
          weight: 1
      curation: {dedup: true, decontaminate: {ngram: 13}, mix_size: null}

Steps, in order (each records its statistics): load -> filters -> dedup by normalised question (`splits.py`) ->
stratify, per source; then dedup across sources, exact-overlap removal against every evaluation set, n-gram
decontamination, and mixing by weight (`mixing.py`). `mathtune data RECIPE` prints the statistics; the pipeline
logs them and trains on the result.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from mathtune.data.filters import FilterContext, approx_tokens, build_predicates, field_value, has_field, parse_filter
from mathtune.data.mixing import allocate, mix, sample_rows
from mathtune.data.sources.base import DataError
from mathtune.data.splits import dedup, drop_overlap, normalize_question
from mathtune.schema import Strict, describe_error

log = logging.getLogger("mathtune")

CURATION_KEYS = ("weight", "filters", "stratify")
MISSING = "(missing)"  # the stratum of rows without the field


class StratifyConfig(Strict):
    """Sample by a field: fixed `counts` per value, `proportions` of `size`, or `size` alone (as in the data)."""

    field: str
    counts: dict[str, int] | None = None
    proportions: dict[str, float] | None = None
    size: int | None = Field(None, gt=0)

    @field_validator("counts", "proportions", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        # YAML reads `{1: 50, 2: 50}` (a MATH level, say) with int keys; rows are compared as text
        return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value

    @model_validator(mode="after")
    def _one_way(self) -> "StratifyConfig":
        if self.counts is not None and (self.proportions is not None or self.size is not None):
            raise ValueError("give counts, or proportions with size, or size alone; not counts with them")
        if self.proportions is not None and self.size is None:
            raise ValueError("proportions need size (the total to split)")
        if self.counts is None and self.size is None:
            raise ValueError("expected counts, or size (with or without proportions)")
        if any(v < 0 for v in (self.counts or {}).values()) or any(v < 0 for v in (self.proportions or {}).values()):
            raise ValueError("counts and proportions must be >= 0")
        return self


class TrainEntry(Strict):
    """The curation keys of one training source entry (the rest of the entry is the source's own options)."""

    weight: float = Field(1.0, gt=0)
    filters: list[Any] = []
    stratify: StratifyConfig | None = None


class DecontamConfig(Strict):
    """Drop training rows sharing word n-grams with an evaluation question (GPT-3 style; 13 words by default)."""

    ngram: int = Field(13, ge=3)
    # share of a training question's n-grams found in eval that marks it; 0: a single shared n-gram is enough
    threshold: float = Field(0.0, ge=0, le=1)
    against: list[dict[str, Any]] = []  # more sets to check against (source specs), beside the recipe's eval sets
    # compare words alone, numbers dropped: catches templated rewrites of eval questions with new numbers and names
    # (reasoning-gym's gsm_symbolic is built from GSM8K test templates: benchmarks/results/gsm_symbolic_overlap.md)
    ignore_numbers: bool = False


class CurationConfig(Strict):
    """What happens to the training rows after each source's own filters and stratification."""

    dedup: bool = True
    decontaminate: DecontamConfig | None = None
    mix_size: int | None = Field(None, gt=0)  # rows in the mix; None: as many as the weights allow, none repeated

    @field_validator("decontaminate")
    @classmethod
    def _check_against(cls, cfg: DecontamConfig | None) -> DecontamConfig | None:
        from mathtune.data.sources import validate_spec

        for i, spec in enumerate(cfg.against if cfg else []):
            validate_spec(spec, where=f"data.curation.decontaminate.against[{i}]")
        return cfg


def train_entries(train: dict | list | None) -> list[dict]:
    """`data.train` as a list of entries (one source or several)."""
    if train is None:
        return []
    return list(train) if isinstance(train, list) else [train]


def split_entry(spec: Mapping[str, Any], where: str) -> tuple[dict, TrainEntry]:
    """(the source spec, its curation keys), both validated; problems raise a one-line DataError."""
    from mathtune.data.sources import validate_spec

    if not isinstance(spec, Mapping):
        raise DataError(f"{where}: expected a mapping with a 'source' key, got {spec!r}")
    source = {k: v for k, v in spec.items() if k not in CURATION_KEYS}
    validate_spec(source, where=where)
    try:
        entry = TrainEntry.model_validate({k: v for k, v in spec.items() if k in CURATION_KEYS})
    except ValidationError as e:
        raise DataError(describe_error(e, where, TrainEntry)) from None
    for i, f in enumerate(entry.filters):
        parse_filter(f, f"{where}.filters[{i}]")
    return source, entry


def validate_train(train: Any, where: str = "data.train") -> Any:
    """Check `data.train` (one entry or a non-empty list) without loading anything."""
    if isinstance(train, list):
        if not train:
            raise DataError(f"{where}: empty list; give at least one source")
        for i, spec in enumerate(train):
            split_entry(spec, f"{where}[{i}]")
    else:
        split_entry(train, where)
    return train


def apply_filters(rows: list[dict], specs: list, ctx: FilterContext, where: str, label: str, stats: list) -> list[dict]:
    """Keep rows passing every filter, recording kept/dropped per filter; a field no row has is an error."""
    for i, (desc, keep, fields) in enumerate(build_predicates(specs, ctx, f"{where}.filters")):
        for f in fields:
            if rows and not any(has_field(r, f) for r in rows):
                have = sorted({k for r in rows[:50] for k in (*r, *(r.get("meta") or {})) if k != "meta"})
                raise DataError(f"{where}.filters[{i}]: no row has field {f!r} (fields there: {', '.join(have)})")
        kept = [r for r in rows if keep(r)]
        dropped = len(rows) - len(kept)
        stats.append({"step": "filter", "source": label, "filter": desc, "kept": len(kept), "dropped": dropped})
        rows = kept
    return rows


def stratify(rows: list[dict], cfg: StratifyConfig, seed: int, where: str) -> tuple[list[dict], dict]:
    """Rows sampled per value of `cfg.field` (original order kept) and {value: {available, asked, taken}}."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        value = field_value(row, cfg.field)
        groups.setdefault(MISSING if value is None else str(value), []).append(i)
    if cfg.counts is not None:
        asked = dict(cfg.counts)
    elif cfg.proportions is not None:
        asked = dict(zip(cfg.proportions, allocate(cfg.size, list(cfg.proportions.values()))))
    else:  # proportional to what the data hold
        asked = dict(zip(groups, allocate(cfg.size, [len(g) for g in groups.values()])))
    absent = [v for v in asked if v not in groups]
    if absent:
        present = ", ".join(f"{v!r}" for v in sorted(groups))
        raise DataError(f"{where}.stratify: no row has {cfg.field} = {absent[0]!r} (values there: {present})")
    rng = random.Random(seed)
    taken: list[int] = []
    strata = {}
    for value in sorted(groups):
        k = min(asked.get(value, 0), len(groups[value]))
        taken += sample_rows(groups[value], k, rng)
        strata[value] = {"available": len(groups[value]), "asked": asked.get(value, 0), "taken": k}
    return [rows[i] for i in sorted(taken)], strata


def _grams(text: str, n: int, ignore_numbers: bool = False) -> set[str]:
    words = re.findall(r"[^\W\d_]+" if ignore_numbers else r"\w+", normalize_question(text))
    if len(words) <= n:  # a short question is one n-gram of its own length
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def decontaminate(
    rows: list[dict], eval_rows: list[dict], ngram: int = 13, threshold: float = 0.0, ignore_numbers: bool = False
) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): a row is dropped when its question shares an n-gram with an eval question and the shared
    share of its n-grams is at least `threshold` (n-grams of words alone with `ignore_numbers`)."""
    index: set[str] = set()
    for row in eval_rows:
        index |= _grams(row["question"], ngram, ignore_numbers)
    kept, dropped = [], []
    for row in rows:
        grams = _grams(row["question"], ngram, ignore_numbers)
        shared = len(grams & index)
        (dropped if shared and shared / len(grams) >= threshold else kept).append(row)
    return kept, dropped


def token_percentiles(rows: list[dict], count_tokens: Callable[[str], int]) -> dict[str, float]:
    """Token length of question + solution: p50, p90, p99, max and mean."""
    import numpy as np

    if not rows:
        return {}
    lengths = np.array([count_tokens(f"{r['question']}\n{r.get('solution', '')}") for r in rows])
    out = {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99)}
    return {**out, "max": float(lengths.max()), "mean": float(lengths.mean())}


def _label(spec: Mapping, i: int, many: bool) -> str:
    name = str(spec.get("source"))
    split = spec.get("split") or spec.get("task")
    name = f"{name}:{split}" if split else name
    return f"[{i}] {name}" if many else name


def curate_train(
    data, eval_sets: list[list[dict]], seed: int, count_tokens: Callable[[str], int] | None = None
) -> tuple[list[dict], list[dict]]:
    """The curated training rows of a recipe's `data:` block (a DataConfig) and the statistics of every step;
    `count_tokens` is the model's token counter (None: the tokenizer-free approximation)."""
    from mathtune.data.sources import load_source

    count = count_tokens or approx_tokens
    ctx = FilterContext(count_tokens=count)
    specs = train_entries(data.train)
    many = len(specs) > 1
    stats: list[dict] = []
    pools, weights, labels = [], [], []
    for i, spec in enumerate(specs):
        where = f"data.train[{i}]" if many else "data.train"
        source, entry = split_entry(spec, where)
        label = _label(source, i, many)
        rows = load_source(source, where=where)
        stats.append({"step": "load", "source": label, "rows": len(rows)})
        rows = apply_filters(rows, entry.filters, ctx, where, label, stats)
        if data.curation.dedup:  # after the filters, so a dropped copy cannot hide a good one
            before, rows = len(rows), dedup(rows)
            stats.append({"step": "dedup", "source": label, "kept": len(rows), "dropped": before - len(rows)})
        if entry.stratify is not None:  # after dedup, so the per-stratum counts are distinct questions
            rows, strata = stratify(rows, entry.stratify, seed + i, where)
            stats.append({"step": "stratify", "source": label, "field": entry.stratify.field, "strata": strata})
        pools.append(rows)
        weights.append(entry.weight)
        labels.append(label)
    _warn_templated_from_eval(specs, eval_sets)
    pools = _clean(pools, labels, data.curation, eval_sets, stats)
    if many or data.curation.mix_size is not None:
        rows, counts = mix(pools, weights, data.curation.mix_size, seed)
        share = {lab: {"weight": w, "available": len(p), "taken": k}
                 for lab, w, p, k in zip(labels, weights, pools, counts)}
        stats.append({"step": "mix", "sources": share, "rows": len(rows)})
    else:
        rows = pools[0]  # one source: its order is kept, as before curation existed
    stats.append({"step": "result", "rows": len(rows), "tokens": token_percentiles(rows, count),
                  "tokenizer": "model" if count_tokens else "approximate (words and symbols)"})
    return rows, stats


# training sources generated from an eval set's own questions, which n-gram decontamination only partly catches
TEMPLATED_FROM = {("reasoning_gym", "gsm_symbolic"): ("gsm8k", "benchmarks/results/gsm_symbolic_overlap.md")}


def _warn_templated_from_eval(specs: list[dict], eval_sets: list[list[dict]]) -> None:
    """Warn when a training source rewrites the evaluation set's questions (GSM-Symbolic from GSM8K test)."""
    evaluated = {row.get("source") for rows in eval_sets for row in rows}
    for spec in specs:
        hit = TEMPLATED_FROM.get((spec.get("source"), spec.get("task")))
        if hit and hit[0] in evaluated:
            log.warning("data.train: %s/%s is built from %s test templates; n-gram decontamination misses many "
                        "(%s): its %s scores are not clean", spec["source"], spec["task"], hit[0], hit[1], hit[0])


def _clean(pools: list[list[dict]], labels: list[str], cfg: CurationConfig, eval_sets: list[list[dict]],
           stats: list) -> list[list[dict]]:
    """Dedup across all sources (first kept), then drop exact and n-gram overlap with the evaluation sets."""
    from mathtune.data.sources import load_source

    # rows are tracked by identity through the steps, so each stays tagged with the source it came from
    tagged = [(j, row) for j, pool in enumerate(pools) for row in pool]

    def keep_only(kept_rows: list[dict]) -> None:
        ids = {id(r) for r in kept_rows}
        tagged[:] = [(j, r) for j, r in tagged if id(r) in ids]

    if cfg.dedup and len(pools) > 1:
        before = len(tagged)
        keep_only(dedup(r for _, r in tagged))
        stats.append({"step": "dedup across sources", "kept": len(tagged), "dropped": before - len(tagged)})
    all_eval = [row for rows in eval_sets for row in rows]
    kept_rows, dropped = drop_overlap([r for _, r in tagged], all_eval)
    keep_only(kept_rows)
    stats.append({"step": "eval overlap (exact)", "kept": len(tagged), "dropped": dropped})
    if cfg.decontaminate is not None:
        d = cfg.decontaminate
        extra = [row for i, spec in enumerate(d.against)
                 for row in load_source(spec, where=f"data.curation.decontaminate.against[{i}]")]
        kept_rows, gone = decontaminate([r for _, r in tagged], all_eval + extra, d.ngram, d.threshold,
                                        d.ignore_numbers)
        gone_ids = {id(r) for r in gone}
        by_source = {lab: sum(1 for j, r in tagged if j == n and id(r) in gone_ids) for n, lab in enumerate(labels)}
        keep_only(kept_rows)
        step = f"decontaminate ({d.ngram}-gram{', numbers ignored' if d.ignore_numbers else ''})"
        stats.append({"step": step, "kept": len(tagged), "dropped": len(gone),
                      "dropped_by_source": by_source, "checked_against": len(all_eval) + len(extra)})
    return [[r for j, r in tagged if j == n] for n in range(len(pools))]


def format_stats(stats: list[dict]) -> list[str]:
    """The statistics as printable lines, one step a line (strata and mix shares indented below)."""
    lines = []
    for s in stats:
        step = s["step"]
        if step == "load":
            lines.append(f"load {s['source']}: {s['rows']} rows")
        elif step in ("filter", "dedup"):
            what = f"filter {s['filter']}" if step == "filter" else "dedup (normalised question)"
            lines.append(f"  {what}: kept {s['kept']}, dropped {s['dropped']}")
        elif step == "stratify":
            lines.append(f"  stratify by {s['field']}:")
            lines += [f"    {v}: {c['taken']} of {c['available']} (asked {c['asked']})" for v, c in s["strata"].items()]
        elif step == "mix":
            lines.append(f"mix: {s['rows']} rows")
            for lab, c in s["sources"].items():
                if c["available"] == 0:
                    note = "no rows left: its weight goes to the others"
                elif c["taken"] > c["available"]:
                    note = f"{c['taken']} rows from {c['available']} (repeated)"
                else:
                    note = f"{c['taken']} of {c['available']} rows"
                lines.append(f"  {lab}: weight {c['weight']:g}, {note}")
        elif step == "result":
            tok = s["tokens"]
            lines.append(f"result: {s['rows']} training rows")
            if tok:
                shown = ", ".join(f"{k} {tok[k]:.0f}" for k in ("p50", "p90", "p99", "max"))
                lines.append(f"  tokens (question + solution, {s['tokenizer']}): {shown}, mean {tok['mean']:.1f}")
        else:
            extra = ""
            if s.get("dropped_by_source") and len(s["dropped_by_source"]) > 1:
                extra = " (" + ", ".join(f"{k}: {v}" for k, v in s["dropped_by_source"].items()) + ")"
            lines.append(f"{step}: kept {s['kept']}, dropped {s['dropped']}{extra}")
    return lines
