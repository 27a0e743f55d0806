"""Curation: each filter, stratified sampling, dedup, n-gram decontamination, mixing by weight, statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathtune.config import DataConfig
from mathtune.data.curation import curate_train, decontaminate, format_stats, stratify, StratifyConfig, validate_train
from mathtune.data.filters import FilterContext, approx_tokens, build_predicates
from mathtune.data.mixing import allocate, mix, mix_counts
from mathtune.data.sources import DataError, make_row

ROOT = Path(__file__).resolve().parents[2]
MAGPIE = str(ROOT / "tests/fixtures/curation/magpie_mini.jsonl")
CTX = FilterContext(count_tokens=approx_tokens)


def row(q: str, solution: str = "", answer: str = "1", **meta) -> dict:
    return make_row(q, answer, solution, "test", meta or None)


ROWS = [
    row("What is 1 + 1?", "<think>\n1 + 1 = 2\n</think>\nIt is \\boxed{2}.", "2", quality="excellent", level=1),
    row("What is 2 + 2?", "<think>\n2 + 2 = 4", "4", quality="good", level=2),  # trace never closed
    row("Name a prime.", "Two is prime.", "2", quality="excellent", level=3),  # no trace
    row("What is 3 + 3?", "<think>\n\n</think>\nSix.", "", quality="average", level=1),  # empty trace, no answer
]


def kept(specs: list) -> list[str]:
    """Questions of ROWS that pass every filter in `specs`."""
    preds = build_predicates(specs, CTX, "filters")
    return [r["question"] for r in ROWS if all(p(r) for _, p, _ in preds)]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"filter": "equals", "field": "quality", "value": "excellent"}, ["What is 1 + 1?", "Name a prime."]),
        ({"filter": "equals", "field": "meta.level", "value": 1}, ["What is 1 + 1?", "What is 3 + 3?"]),
        ({"filter": "equals", "field": "level", "value": "2"}, ["What is 2 + 2?"]),  # compared as text
        ({"filter": "in", "field": "quality", "values": ["good", "average"]}, ["What is 2 + 2?", "What is 3 + 3?"]),
        ({"filter": "regex", "field": "question", "pattern": r"\d \+ \d"}, ["What is 1 + 1?", "What is 2 + 2?",
                                                                            "What is 3 + 3?"]),
        ({"filter": "regex", "field": "question", "pattern": "PRIME", "ignore_case": True}, ["Name a prime."]),
        ({"filter": "tokens", "max": 8}, ["Name a prime."]),  # "Name a prime . Two is prime ." = 8 pieces
        ({"filter": "tokens", "min": 9, "fields": ["question"]}, []),
        ({"filter": "has_thinking_trace"}, ["What is 1 + 1?"]),
        ({"filter": "response_complete"}, ["What is 1 + 1?", "Name a prime."]),
        ({"filter": "response_complete", "require_answer": False},
         ["What is 1 + 1?", "Name a prime.", "What is 3 + 3?"]),
        ({"filter": "has_thinking_trace", "invert": True}, ["What is 2 + 2?", "Name a prime.", "What is 3 + 3?"]),
    ],
)
def test_each_filter(spec, expected):
    assert kept([spec]) == expected


def test_tokens_filter_uses_the_given_counter():
    ctx = FilterContext(count_tokens=len)  # characters
    (_, keep, _), = build_predicates([{"filter": "tokens", "max": 20, "fields": ["question"]}], ctx, "f")
    assert keep(row("x" * 20)) and not keep(row("x" * 21))


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"filter": "equalz", "field": "a", "value": 1},
         "filters[0].filter: unknown filter 'equalz'. Did you mean 'equals'?"),
        ({"filter": "equals", "value": 1}, "filters[0].field: missing required key"),
        ({"filter": "regex", "field": "question", "pattern": "("}, "not a valid regular expression"),
        ({"filter": "in", "field": "q", "values": []}, "filters[0].values"),
        ({"filter": "tokens", "maxx": 3}, "filters[0].maxx: unknown key. Did you mean 'max'?"),
        ("equals", "filters[0]: expected a mapping"),
    ],
)
def test_bad_filter_entries_are_one_line(spec, message):
    with pytest.raises(DataError) as err:
        validate_train({"source": "file", "path": "x.jsonl", "filters": [spec]})
    assert message in str(err.value) and "\n" not in str(err.value)


def pool(n_easy: int, n_hard: int) -> list[dict]:
    return [row(f"easy {i}", difficulty="easy") for i in range(n_easy)] + [
        row(f"hard {i}", difficulty="hard") for i in range(n_hard)
    ]


def taken(strata: dict) -> dict:
    return {k: v["taken"] for k, v in strata.items()}


def test_stratify_counts_proportions_and_size():
    rows = pool(10, 4)
    out, strata = stratify(rows, StratifyConfig(field="difficulty", counts={"easy": 3, "hard": 6}), 0, "s")
    assert taken(strata) == {"easy": 3, "hard": 4} and strata["hard"]["asked"] == 6  # short stratum: all of it
    assert len(out) == 7 and out == [r for r in rows if r in out]  # original order kept
    _, strata = stratify(rows, StratifyConfig(field="difficulty", proportions={"easy": 3, "hard": 1}, size=8), 0, "s")
    assert taken(strata) == {"easy": 6, "hard": 2}
    _, strata = stratify(rows, StratifyConfig(field="difficulty", size=7), 0, "s")  # as in the data: 10:4
    assert taken(strata) == {"easy": 5, "hard": 2}
    _, strata = stratify(rows, StratifyConfig(field="difficulty", counts={"easy": 2}), 0, "s")
    assert taken(strata) == {"easy": 2, "hard": 0}  # a stratum not named is dropped
    again, _ = stratify(rows, StratifyConfig(field="difficulty", counts={"easy": 3}), 0, "s")
    assert again == stratify(rows, StratifyConfig(field="difficulty", counts={"easy": 3}), 0, "s")[0]  # seeded


def test_stratify_errors():
    with pytest.raises(DataError, match="no row has difficulty = 'eazy'.*'easy', 'hard'"):
        stratify(pool(2, 2), StratifyConfig(field="difficulty", counts={"eazy": 1}), 0, "s")
    for bad in ({"field": "d"}, {"field": "d", "proportions": {"a": 1}}, {"field": "d", "counts": {"a": 1}, "size": 3}):
        with pytest.raises(ValueError):
            StratifyConfig(**bad)
    assert StratifyConfig(field="level", counts={1: 5}).counts == {"1": 5}  # YAML int keys compared as text


def test_decontaminate_by_ngram_overlap():
    evals = [row("Janet has 16 ducks that lay eggs every single morning and she sells the rest at the market daily")]
    train = [
        row("Janet has 900 ducks that lay eggs every single morning and she sells the rest at the market daily"),
        row("A farmer has 3 cows and buys 2 more cows at the market on a sunny afternoon in the spring"),
        row("janet has 16 ducks"),  # shorter than n: compared whole, and not equal to any eval question
    ]
    kept_rows, dropped = decontaminate(train, evals, ngram=8)
    assert [r["question"][:9] for r in dropped] == ["Janet has"] and len(kept_rows) == 2
    kept_rows, dropped = decontaminate(train, evals, ngram=8, threshold=0.9)  # most of its 8-grams must match
    assert not dropped


def test_decontaminate_ignoring_numbers_catches_a_template_rewritten_with_new_numbers():
    evals = [row("Janet has 16 ducks that lay 3 eggs each and she sells 4 of them at the market for 2 dollars")]
    rewrite = row("Janet has 41 ducks that lay 7 eggs each and she sells 9 of them at the market for 5 dollars")
    other = row("A farmer has 3 cows and buys 2 more cows at the market on a sunny afternoon in the spring")
    assert decontaminate([rewrite, other], evals, ngram=7)[1] == []  # every 7 words hold a changed number
    kept_rows, dropped = decontaminate([rewrite, other], evals, ngram=7, ignore_numbers=True)
    assert dropped == [rewrite] and kept_rows == [other]


def test_mixing_gsm_symbolic_into_a_gsm8k_recipe_warns_that_its_test_scores_are_not_clean(caplog):
    from mathtune.data.curation import _warn_templated_from_eval

    gsm8k_test = [dict(row("Janet has 16 ducks"), source="gsm8k")]
    symbolic = {"source": "reasoning_gym", "task": "gsm_symbolic", "size": 10, "seed": 0}
    with caplog.at_level("WARNING", logger="mathtune"):
        _warn_templated_from_eval([{"source": "reasoning_gym", "task": "chain_sum", "size": 10, "seed": 0}],
                                  [gsm8k_test])
        _warn_templated_from_eval([symbolic], [[row("1 + 1")]])  # evaluated on something else: no warning
        assert caplog.records == []
        _warn_templated_from_eval([symbolic], [gsm8k_test])
    assert "gsm_symbolic is built from gsm8k test templates" in caplog.text


def test_allocate_and_mix_counts():
    assert allocate(10, [1, 1, 1]) == [4, 3, 3] and sum(allocate(7, [0.2, 0.5, 0.3])) == 7
    assert mix_counts([100, 1000], [1, 1], None) == [100, 100]  # largest mix without repeating a row
    assert mix_counts([100, 1000], [0.2, 0.8], None) == [100, 400]
    assert mix_counts([0, 50], [0.5, 0.5], None) == [0, 50]  # an empty pool's weight goes to the others
    assert mix_counts([3, 4], [0.6, 0.3], 12) == [8, 4]


def test_mix_repeats_only_when_asked_for_more():
    a, b = [{"id": f"a{i}"} for i in range(3)], [{"id": f"b{i}"} for i in range(10)]
    rows, counts = mix([a, b], [2, 1], None, seed=0)
    assert counts == [3, 1] and len({r["id"] for r in rows}) == 4
    rows, counts = mix([a, b], [2, 1], 9, seed=0)
    assert counts == [6, 3] and sum(r["id"].startswith("a") for r in rows) == 6  # each a-row twice
    assert mix([a, b], [2, 1], 9, seed=0)[0] == rows  # seeded


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_curate_magpie_fixture_statistics():
    data = DataConfig.model_validate({
        "train": {
            "source": "magpie_reasoning", "path": MAGPIE,
            "filters": [
                {"filter": "equals", "field": "input_quality", "value": "excellent"},
                {"filter": "equals", "field": "task_category", "value": "Math"},
                {"filter": "response_complete"},
                {"filter": "has_thinking_trace"},
            ],
            "stratify": {"field": "difficulty", "counts": {"very easy": 1, "easy": 5, "medium": 2}},
        },
        "eval": {"source": "math500", "path": str(ROOT / "tests/fixtures/hub/math500/test.jsonl")},
    })
    rows, stats = curate_train(data, [[]], seed=0)
    filters = [(s["kept"], s["dropped"]) for s in stats if s["step"] == "filter"]
    assert filters == [(15, 3), (13, 2), (10, 3), (9, 1)]
    assert [s for s in stats if s["step"] == "dedup"][0]["dropped"] == 1  # "Solve for x:  4x - 7 = 13" twice
    strata = next(s for s in stats if s["step"] == "stratify")["strata"]
    assert taken(strata) == {"easy": 3, "hard": 0, "medium": 2, "very easy": 1}
    assert len(rows) == 6 and all("</think>" in r["solution"] and r["answer"] for r in rows)
    result = stats[-1]
    assert result["rows"] == 6 and result["tokens"]["p50"] <= result["tokens"]["p90"] <= result["tokens"]["max"]
    text = "\n".join(format_stats(stats))
    assert "filter equals field=input_quality value=excellent: kept 15, dropped 3" in text
    assert "easy: 3 of 3 (asked 5)" in text and "result: 6 training rows" in text


def test_curate_mixes_dedups_and_decontaminates_across_sources(tmp_path):
    shared = "Tom reads 14 pages on Monday and twice as many on Tuesday and then some more on Wednesday. How many?"
    a = write_jsonl(tmp_path / "a.jsonl", [{"question": f"a question {i}", "answer": "1"} for i in range(6)]
                    + [{"question": shared.replace("14", "15"), "answer": "2"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"question": f"A question {i}.", "answer": "1"} for i in range(3)]
                    + [{"question": f"b question {i}", "answer": "1"} for i in range(9)])
    data = DataConfig.model_validate({
        "train": [{"source": "file", "path": a, "weight": 1}, {"source": "file", "path": b, "weight": 1}],
        "eval": {"source": "file", "path": write_jsonl(tmp_path / "e.jsonl", [{"question": shared, "answer": "3"}])},
        "curation": {"decontaminate": {"ngram": 8}},
    })
    eval_rows = [make_row(shared, "3", "", "file")]
    rows, stats = curate_train(data, [eval_rows], seed=1)
    steps = {s["step"]: s for s in stats}
    assert steps["dedup across sources"]["dropped"] == 3  # "A question 0." == "a question 0"
    assert steps["decontaminate (8-gram)"]["dropped"] == 1  # 15 pages vs 14 pages: same 8-word spans
    assert steps["decontaminate (8-gram)"]["dropped_by_source"] == {"[0] file": 1, "[1] file": 0}
    share = steps["mix"]["sources"]
    assert share["[0] file"]["available"] == 6 and share["[1] file"]["available"] == 9
    assert share["[0] file"]["taken"] == share["[1] file"]["taken"] == 6 and len(rows) == 12


def test_single_source_keeps_its_order_and_old_behaviour(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": q, "answer": "1"} for q in ["b", "a", "B.", "c"]])
    spec = {"source": "file", "path": path}
    data = DataConfig.model_validate({"train": spec, "eval": spec})
    rows, stats = curate_train(data, [[make_row("c", "1", "", "file")]], seed=0)
    assert [r["question"] for r in rows] == ["b", "a"]  # dedup then exact overlap with eval, order kept
    assert [s["step"] for s in stats] == ["load", "dedup", "eval overlap (exact)", "result"]
    assert stats[-1]["tokenizer"].startswith("approximate")


def test_filter_on_a_field_no_row_has_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": "q", "answer": "1"}])
    data = DataConfig.model_validate({
        "train": {"source": "file", "path": path, "filters": [{"filter": "equals", "field": "qualty", "value": 1}]},
        "eval": {"source": "file", "path": path},
    })
    with pytest.raises(DataError, match=r"data.train.filters\[0\]: no row has field 'qualty' \(fields there: answer"):
        curate_train(data, [[]], seed=0)


def test_train_entries_validate_in_recipes():
    with pytest.raises(DataError, match=r"data.train\[1\].weight"):
        validate_train([{"source": "gsm8k", "split": "train"}, {"source": "gsm8k", "split": "test", "weight": 0}])
    with pytest.raises(DataError, match="empty list"):
        validate_train([])
    with pytest.raises(DataError, match=r"data.train.stratify.*proportions need size"):
        validate_train({"source": "gsm8k", "split": "train", "stratify": {"field": "x", "proportions": {"a": 1}}})


def test_data_command_prints_statistics_and_writes_atomically(tmp_path, monkeypatch, tiny_checkpoint):
    from typer.testing import CliRunner

    from mathtune.cli import app
    from mathtune.data.sources import load_source

    monkeypatch.chdir(ROOT)  # the tiny twins read their fixtures by relative path
    runner = CliRunner()
    for name in ("curated.jsonl", "curated.parquet"):
        out = tmp_path / name
        result = runner.invoke(app, ["data", "tiny/sft_magpie_curated", "--tokenizer", str(tiny_checkpoint),
                                     "--write", str(out)])
        assert result.exit_code == 0, result.output
        assert "filter equals field=task_category value=Math: kept 13, dropped 2" in result.output
        assert "very easy: 2 of 2 (asked 2)" in result.output and f"tokenizer of {tiny_checkpoint}" in result.output
        assert "wrote 6 rows" in result.output and not list(tmp_path.glob(".*"))  # no temporary file left
        back = load_source({"source": "file", "path": str(out)})
        assert len(back) == 6 and all("<think>" in r["solution"] for r in back)
    result = runner.invoke(app, ["data", "tiny/sft_mix", "--tokenizer", "approx", "--write", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "expected a .jsonl or .parquet" in result.output
