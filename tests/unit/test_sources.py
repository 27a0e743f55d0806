"""Data sources: recipe errors read as one line, every source maps its (fixture) data onto the row schema."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from mathtune.data.sources import SOURCES, DataError, SourceOptions, load_source, make_row, register_source
from mathtune.data.sources.hub import plain_number
from mathtune.data.sources.reasoning_gym import arithmetic_steps, cot_text

FIXTURES = Path(__file__).parents[1] / "fixtures"
HUB = FIXTURES / "hub"
LOCAL = FIXTURES / "local"
RG = {"source": "reasoning_gym", "task": "chain_sum", "size": 4, "seed": 1}


def test_builtin_sources_are_registered():
    expected = {"reasoning_gym", "file", "gsm8k", "gsm_hard", "math", "math500", "numina_cot", "magpie_reasoning"}
    assert expected | {"openmathinstruct2", "svamp", "asdiv"} <= set(SOURCES.names())


# --- recipe errors --------------------------------------------------------------------------------------------

ERRORS = [
    ({"source": "gsm8kk", "split": "test"}, "data.train.source: unknown data source 'gsm8kk'. Did you mean 'gsm8k'?"),
    ({**RG, "size": "abc"}, "data.train.size: expected an integer, got 'abc'"),
    ({**RG, "size": 0}, "data.train.size: expected a positive number of problems, got 0"),
    (
        {"source": "reasoning_gym", "task": "chain_sum", "sizee": 4, "seed": 1},
        "data.train.sizee: unknown key. Did you mean 'size'?",
    ),
    ({"source": "reasoning_gym", "task": "chain_sum", "size": 4}, "data.train.seed: missing required key"),
    ({**RG, "task": "chian_sum"}, "data.train.task: unknown reasoning-gym task 'chian_sum'. Did you mean 'chain_sum'"),
    (
        {**RG, "config": {"min_term": 2}},
        "data.train.config: task 'chain_sum' has no option 'min_term'. Did you mean 'min_terms'?",
    ),
    ({**RG, "config": {"seed": 3}}, "data.train.config: 'seed' is an option of its own"),
    ({**RG, "config": {"min_terms": 0}}, "data.train: reasoning-gym task 'chain_sum' rejected config"),
    ({"source": "gsm8k", "split": "dev"}, "data.train.split: expected 'train' or 'test', got 'dev'"),
    ({"source": "math", "split": "test", "subjects": ["algebra", "geo"]}, "data.train.subjects[1]: expected 'algebra'"),
    (
        {"source": "file", "path": "x.jsonl", "answer_format": "hash"},
        "data.train.answer_format: expected 'plain', 'gsm8k' or 'boxed', got 'hash'",
    ),
    ({"source": "file", "path": "x.jsonl", "fields": {"questoin": "q"}}, "data.train.fields: unknown schema field"),
    ({"source": "file", "path": "missing/x.jsonl"}, "data.train: file not found: missing/x.jsonl"),
    ({**RG, "limit": -1}, "data.train.limit: expected a count >= 0, got -1"),
    ({"split": "test"}, "data.train.source: missing; expected one of: "),
    ({"source": 3}, "data.train.source: expected a string, got 3"),
    (["gsm8k"], "data.train: expected a mapping with a 'source' key"),
]


@pytest.mark.parametrize("spec, message", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_recipe_errors_are_one_line_and_name_the_key(spec, message):
    with pytest.raises(DataError) as info:
        load_source(spec, where="data.train")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_where_defaults_to_data():
    with pytest.raises(DataError, match=r"^data\.size: expected an integer"):
        load_source({**RG, "size": "x"})


# --- reasoning_gym ----------------------------------------------------------------------------------------------


def test_reasoning_gym_rows_carry_a_gradable_entry():
    import reasoning_gym

    rows = load_source({**RG, "size": 6})
    assert len(rows) == 6
    score = reasoning_gym.get_score_answer_fn("chain_sum")
    for row in rows:
        assert row["source"] == "reasoning_gym" and row["meta"]["task"] == "chain_sum"
        entry = row["meta"]["entry"]
        assert json.loads(json.dumps(entry)) == entry  # JSON-able as stored
        assert row["answer"] == str(entry["answer"])
        assert score(row["answer"], entry) == 1.0
        assert score("not a number", entry) == 0.0
        # the worked steps end in the gold answer
        assert row["solution"].splitlines()[-1].endswith(f"= {row['answer']}")


def test_reasoning_gym_is_deterministic_per_seed():
    assert load_source(RG) == load_source(RG)
    assert load_source(RG) != load_source({**RG, "seed": 2})


def test_gsm_symbolic_solution_is_its_chain_of_thought_without_the_final_marker():
    rows = load_source({"source": "reasoning_gym", "task": "gsm_symbolic", "size": 3, "seed": 5})
    for row in rows:
        assert row["solution"] and "####" not in row["solution"]
        assert row["solution"].count("\n") >= 1
        assert row["answer"] == str(row["meta"]["entry"]["answer"])


def test_tasks_without_a_usable_expression_get_no_solution_but_still_grade():
    import reasoning_gym

    (row,) = load_source({"source": "reasoning_gym", "task": "countdown", "size": 1, "seed": 3})
    assert row["solution"] == ""  # its expression *is* the answer: nothing to work through
    # tuples in the metadata became lists on the way to JSON; grading still works
    assert reasoning_gym.get_score_answer_fn("countdown")(row["answer"], row["meta"]["entry"]) == 1.0


@pytest.mark.parametrize(
    "cot, expected",
    [
        ("Add them: 2 + 3 = 5.\n#### 5", "Add them: 2 + 3 = 5."),
        (["2 + 3 = 5", "5 * 2 = 10", "#### 10"], "2 + 3 = 5\n5 * 2 = 10"),
        ("['2 + 3 = 5', '5 * 2 = 10', '#### 10']", "2 + 3 = 5\n5 * 2 = 10"),
        ("Step one.\nStep two.\n\n", "Step one.\nStep two."),
        ("[not a list] but text", "[not a list] but text"),
    ],
)
def test_cot_text(cot, expected):
    assert cot_text(cot) == expected


@pytest.mark.parametrize(
    "expression, answer, expected",
    [
        ("4 + 7 - 2", "9", "4 + 7 = 11\n11 - 2 = 9"),
        ("2 + 3 * 4", "14", "3 * 4 = 12\n2 + 12 = 14"),
        ("( 2 + 3 ) * 4", "20", "2 + 3 = 5\n5 * 4 = 20"),
        ("5 - -3", "8", "5 - (-3) = 8"),
        ("-( 3 + 4 ) * 2", "-14", "3 + 4 = 7\n-(7) = -7\n-7 * 2 = -14"),
        ("12 / 4 + 1", "4", "12 / 4 = 3\n3 + 1 = 4"),
        ("7 / 2", "3", ""),  # not exact: a step "7 / 2 = 3" would teach a falsehood
        ("4 + 7", "12", ""),  # does not reproduce the gold: we misread the task
        ("42", "42", ""),  # nothing to work through
        ("2 ** 3", "8", ""),  # not one of the four operations
        ("1.5 + 2", "3.5", ""),
        ("4 +", "4", ""),
    ],
)
def test_arithmetic_steps(expression, answer, expected):
    assert arithmetic_steps(expression, answer) == expected


# --- the file source --------------------------------------------------------------------------------------------


def test_file_source_maps_fields_and_keeps_meta_fields():
    rows = load_source(
        {
            "source": "file",
            "path": str(LOCAL / "word_problems.jsonl"),
            "fields": {"question": "problem", "answer": "final", "solution": "worked"},
            "meta_fields": ["topic"],
        }
    )
    assert len(rows) == 4  # the blank line is skipped
    assert rows[0] == {
        "question": "A box holds 6 eggs. How many eggs are in 7 boxes?",
        "answer": "42",
        "solution": "7 boxes hold 7 * 6 = 42 eggs.",
        "source": "file",
        "meta": {"topic": "multiplication"},
    }


def test_file_source_gsm8k_format_gives_bare_answer_and_clean_solution():
    rows = load_source({"source": "file", "path": str(LOCAL / "gsm8k_style.json"), "answer_format": "gsm8k"})
    assert [r["answer"] for r in rows] == ["24", "325", "10000"]
    assert rows[0]["solution"] == "She buys 4 * 6 = 24 juice boxes."


def test_file_source_boxed_parquet():
    spec = {"source": "file", "path": str(LOCAL / "boxed.parquet"), "fields": {"answer": "solution"}}
    rows = load_source({**spec, "answer_format": "boxed"})
    assert [r["answer"] for r in rows] == ["56", "\\frac{3}{4}", "9\\pi"]
    assert rows[1]["solution"] == "$0.75 = \\frac{75}{100} = \\boxed{\\frac{3}{4}}$."


def test_file_source_reads_json_lines_saved_as_json(tmp_path):
    path = tmp_path / "export.json"  # what datasets.Dataset.to_json writes
    path.write_text('{"question": "1 + 1?", "answer": "2"}\n{"question": "2 + 2?", "answer": "4"}\n')
    rows = load_source({"source": "file", "path": str(path)})
    assert [(r["question"], r["answer"], r["solution"]) for r in rows] == [("1 + 1?", "2", ""), ("2 + 2?", "4", "")]


@pytest.mark.parametrize(
    "content, extra, message",
    [
        (
            '{"question": "a", "answer": "1"}\n{"question": "b"}\n',
            {},
            "row 2: missing key 'answer' (keys there: question)",
        ),
        (
            '{"problem": "a", "answer": "1"}\n',
            {"fields": {"question": "problem", "solution": "worked"}},
            "row 1: missing key 'worked'",
        ),
        ('{"question": "a", "answer": "1"}\n{"question": "b", "answer": \n', {}, "line 2: not valid JSON"),
        ('["a", "b"]\n', {}, "line 1: expected a JSON object"),
        ('{"question": "a", "answer": "no marker"}\n', {"answer_format": "gsm8k"}, "row 1: no '#### N' line"),
        ('{"question": "a", "answer": "1"}\n', {"meta_fields": ["topic"]}, "row 1: missing meta key 'topic'"),
    ],
)
def test_file_source_errors_name_file_row_and_key(tmp_path, content, extra, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_source({"source": "file", "path": str(path), **extra}, where="data.eval")
    assert str(info.value).startswith(f"data.eval: {path}: ")
    assert message in str(info.value)


def test_file_source_rejects_unknown_suffix(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("question,answer\n")
    with pytest.raises(DataError, match=r"unsupported file type '\.csv'"):
        load_source({"source": "file", "path": str(path)})


# --- hub sources, read from fixtures in each dataset's own layout ----------------------------------------------

HUB_CASES = [
    # spec, rows, (question start, answer, solution start) of row 0, meta of row 0
    (
        {"source": "gsm8k", "split": "test", "path": HUB / "gsm8k"},
        6,
        ("Mara bakes 3 trays", "21", "Mara bakes 3 * 12 = 36 cookies.\nShe has 36 - 15 = 21 cookies left."),
        None,
    ),
    ({"source": "gsm8k", "split": "train", "path": HUB / "gsm8k"}, 3, ("A farmer has 8 cows", "13", "He has"), None),
    ({"source": "gsm_hard", "path": HUB / "gsm_hard" / "gsmhardv2.jsonl"}, 5, ("Janet has", "7154763", ""), None),
    (
        {"source": "math", "split": "test", "path": HUB / "math"},
        5,
        ("What is the value of $x$", "5", "Subtracting"),
        {"level": "Level 1", "type": "Algebra"},
    ),
    (
        {"source": "math", "split": "test", "subjects": ["number_theory"], "path": HUB / "math"},
        2,
        ("What is the remainder", "2", "Since $2^3"),
        {"level": "Level 3", "type": "Number Theory"},
    ),
    (
        {"source": "math500", "path": HUB / "math500"},
        5,
        ("Compute $\\dbinom{8}{3}$.", "56", "$\\dbinom{8}{3} ="),
        {"subject": "Counting & Probability", "level": 2, "unique_id": "test/counting_and_probability/901.json"},
    ),
    (
        {"source": "numina_cot", "split": "test", "path": HUB / "numina_cot"},
        5,
        ("Prove that", "", "We factor"),
        {"source": "olympiads"},
    ),
    (
        {"source": "openmathinstruct2", "path": HUB / "openmathinstruct2"},
        5,
        ("What is the greatest", "42", "We have"),
        {"problem_source": "augmented_math"},
    ),
    (
        {"source": "svamp", "split": "test", "path": HUB / "svamp"},
        5,
        ("Kim had 14 stickers. She gave 6 stickers to her sister. How many", "8", ""),
        {"ID": "chal-901", "Equation": "( 14.0 - 6.0 )", "Type": "Subtraction"},
    ),
    (
        {"source": "asdiv", "path": HUB / "asdiv"},
        5,
        ("Rosa picked 8 pears and Jon picked 5 pears. How many", "13", ""),
        {"solution_type": "Addition", "formula": "8+5=13"},
    ),
]


@pytest.mark.parametrize("spec, n, first, meta", HUB_CASES, ids=[c[0]["source"] for c in HUB_CASES])
def test_hub_sources_map_fixture_rows(spec, n, first, meta):
    rows = load_source({**spec, "path": str(spec["path"])})
    assert len(rows) == n
    question, answer, solution = first
    assert rows[0]["question"].startswith(question)
    assert rows[0]["answer"] == answer
    assert rows[0]["solution"].startswith(solution)
    assert rows[0]["source"] == spec["source"]
    assert rows[0].get("meta") == meta


def test_gsm8k_strips_calculator_notes_and_commas():
    rows = load_source({"source": "gsm8k", "split": "test", "path": str(HUB / "gsm8k")})
    assert rows[2]["answer"] == "1250"
    assert all("<<" not in r["solution"] and "####" not in r["solution"] for r in rows)


def test_gsm8k_keeps_calculator_notes_when_asked():
    plain = load_source({"source": "gsm8k", "split": "test", "path": str(HUB / "gsm8k")})
    kept = load_source({"source": "gsm8k", "split": "test", "path": str(HUB / "gsm8k"), "calculator_notes": True})
    assert [r["answer"] for r in kept] == [r["answer"] for r in plain]
    assert any("<<" in r["solution"] for r in kept) and all("####" not in r["solution"] for r in kept)
    assert [re.sub(r"<<[^>]*>>", "", r["solution"]) for r in kept] == [r["solution"] for r in plain]


def test_math_answers_are_the_last_box_with_nested_braces():
    rows = load_source({"source": "math", "split": "test", "path": str(HUB / "math")})
    assert [r["answer"] for r in rows] == ["5", "\\frac{3}{4}", "3", "2", "9"]


def test_numina_answer_is_empty_without_a_box():
    rows = load_source({"source": "numina_cot", "split": "test", "path": str(HUB / "numina_cot")})
    assert [r["answer"] for r in rows] == ["", "7", "54", "30", "\\textbf{(B)}\\ 4"]


def test_magpie_keeps_the_trace_and_curation_fields():
    rows = load_source({"source": "magpie_reasoning", "path": str(HUB / "magpie_reasoning")})
    assert [r["answer"] for r in rows] == ["72", "\\{-1, 4\\}", "", "\\frac{2}{15}", "35"]
    assert rows[0]["solution"].startswith("<think>\n") and "</think>" in rows[0]["solution"]
    meta = rows[2]["meta"]
    assert meta["task_category"] == "Coding & Debugging" and meta["difficulty"] == "easy"
    assert meta["input_quality"] == "average" and meta["other_task_category"] == ["Reasoning"]


def test_gsm_hard_targets_lose_float_noise():
    rows = load_source({"source": "gsm_hard", "path": str(HUB / "gsm_hard" / "gsmhardv2.jsonl")})
    assert [r["answer"] for r in rows] == ["7154763", "4397.5", "1954116", "300", "1485"]


@pytest.mark.parametrize(
    "value, text",
    [
        (72.0, "72"),
        (2.5, "2.5"),
        (0.1 + 0.2, "0.3"),
        (7, "7"),
        ("145.0", "145"),
        ("1,000", "1000"),
        ("3:5", "3:5"),
        (-4.0, "-4"),
    ],
)
def test_plain_number(value, text):
    assert plain_number(value) == text


def test_limit_keeps_the_first_rows():
    rows = load_source({"source": "math500", "path": str(HUB / "math500"), "limit": 2})
    assert [r["answer"] for r in rows] == ["56", "\\left( 3, \\frac{\\pi}{2} \\right)"]


def test_local_copy_errors_name_the_path():
    with pytest.raises(DataError, match=r"number_theory: no files for split 'train'"):
        load_source({"source": "math", "split": "train", "path": str(HUB / "math")})
    with pytest.raises(DataError, match=r"no folder for subject 'geometry'"):
        load_source({"source": "math", "split": "test", "subjects": ["geometry"], "path": str(HUB / "math")})
    with pytest.raises(DataError, match=r"^data: path not found: /nowhere/gsm8k$"):
        load_source({"source": "gsm8k", "split": "test", "path": "/nowhere/gsm8k"})
    with pytest.raises(DataError, match=r"gsm_hard/gsmhardv2.jsonl: row 1: missing key 'answer'"):
        load_source({"source": "gsm8k", "split": "test", "path": str(HUB / "gsm_hard" / "gsmhardv2.jsonl")})


@pytest.fixture
def fake_hub(monkeypatch):
    """Stand in for `datasets` so the hub code path runs offline; records each load_dataset call."""
    calls = []

    def load_dataset(hub_id, config=None, *, split):
        calls.append((hub_id, config, split))
        if hub_id == "ChilleD/SVAMP":  # stands for any dataset the hub cannot serve right now
            raise ConnectionError("Couldn't reach 'ChilleD/SVAMP' on the Hub\nmore detail")
        rows = {"openai/gsm8k": [{"question": "1 + 1?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}]}.get(hub_id)
        rows = rows or [
            {"problem": f"{config} problem", "solution": "so $\\boxed{1}$", "level": "Level 1", "type": str(config)}
        ]
        return types.SimpleNamespace(to_list=lambda: list(rows))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_loading_calls_load_dataset_with_id_config_and_split(fake_hub):
    rows = load_source({"source": "gsm8k", "split": "test", "limit": 5, "hub": True})
    assert fake_hub == [("openai/gsm8k", "main", "test[:5]")]
    assert rows == [make_row("1 + 1?", "2", "1 + 1 = 2", "gsm8k")]


def test_gsm8k_ships_inside_the_package_and_loads_without_the_hub(fake_hub):
    test = load_source({"source": "gsm8k", "split": "test"})
    train = load_source({"source": "gsm8k", "split": "train", "limit": 3})
    assert fake_hub == []  # no hub call
    assert len(test) == 1319 and len(train) == 3
    # the first test problem of openai/gsm8k main, as published
    assert test[0]["question"].startswith("Janet’s ducks lay 16 eggs per day.") and test[0]["answer"] == "18"
    assert "<<" not in train[0]["solution"] and train[0]["answer"] == "72"
    assert {r["question"] for r in test}.isdisjoint(r["question"] for r in load_source({"source": "gsm8k", "split": "train"}))


def test_gsm8k_socratic_is_not_shipped(fake_hub):
    with pytest.raises(DataError, match="socratic.*hub: true"):
        load_source({"source": "gsm8k", "split": "test", "config": "socratic"})


def test_math_loads_each_subject_config(fake_hub):
    rows = load_source({"source": "math", "split": "train", "subjects": ["algebra", "geometry"]})
    assert fake_hub == [
        ("EleutherAI/hendrycks_math", "algebra", "train"),
        ("EleutherAI/hendrycks_math", "geometry", "train"),
    ]
    assert [r["meta"]["type"] for r in rows] == ["algebra", "geometry"]
    fake_hub.clear()
    load_source({"source": "math", "split": "test"})
    assert len(fake_hub) == 7


def test_hub_failure_says_to_use_a_local_copy(fake_hub):
    with pytest.raises(DataError) as info:
        load_source({"source": "svamp", "split": "test"}, where="data.eval")
    message = str(info.value)
    assert message.startswith("data.eval: could not load ChilleD/SVAMP split 'test' from the hub")
    assert "ConnectionError: Couldn't reach" in message and "set `path`" in message and "\n" not in message


# --- users extend the registry from their own files ------------------------------------------------------------


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    monkeypatch.setattr(SOURCES, "_items", dict(SOURCES._items))


def test_a_new_source_registers_by_decorator_and_loads_through_load_source(scratch_registry):
    class CountOptions(SourceOptions):
        n: int
        start: int = 1

    @register_source("my_src", CountOptions)
    def load_counting(opts: CountOptions) -> list[dict]:
        return [make_row(f"What comes after {i}?", str(i + 1), "", "my_src") for i in range(opts.start, opts.n + 1)]

    rows = load_source({"source": "my_src", "n": 3})
    assert [r["answer"] for r in rows] == ["2", "3", "4"]
    assert load_source({"source": "my_src", "n": 3, "limit": 1}) == rows[:1]
    with pytest.raises(DataError, match=r"^data\.n: expected an integer, got 'three'$"):
        load_source({"source": "my_src", "n": "three"})
    with pytest.raises(DataError, match=r"Did you mean 'my_src'\?"):
        load_source({"source": "my_scr", "n": 3})


def test_rows_from_a_user_source_are_checked(scratch_registry):
    @register_source("sloppy")
    def load_sloppy(opts: SourceOptions) -> list[dict]:
        return [{"question": "q", "answer": 5, "solution": "", "source": "sloppy"}]

    with pytest.raises(DataError, match=r"^data: source 'sloppy' row 1: 'answer' must be a string"):
        load_source({"source": "sloppy"})
