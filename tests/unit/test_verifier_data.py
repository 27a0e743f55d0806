"""Verifier data: label parsing, the NYU-DL-Teach-Maths-Comp schema from a fixture, field mapping, bad rows,
balance report and balancing, empty classes, held-out questions kept out of training, recipe errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathtune.config import load_recipe
from mathtune.data.sources import DataError
from mathtune.errors import UserError
from mathtune.verifier.config import LabelledSource
from mathtune.verifier.data import (
    balance, balance_report, check_classes, drop_shared_questions, parse_label, read_labelled, rows_from_samples,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "verifier" / "nyu_maths_comp"
PARQUET = FIXTURE / "data" / "train-00000-of-00001.parquet"


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), ("true", True), ("false", False),
    ("True", True), ("FALSE", False), (" 1 ", True), ("0", False),
])
def test_labels_that_parse(value, expected):
    assert parse_label(value, "row 1") is expected


@pytest.mark.parametrize("value", ["yes", "", None, 2, -1, 0.5, "truee", [True]])
def test_labels_that_do_not_parse_name_the_row(value):
    with pytest.raises(DataError, match=r"^row 7: expected a boolean label \(true/false/1/0\), got "):
        parse_label(value, "row 7")


def test_nyu_schema_fixture_loads_with_default_mapping():
    rows = read_labelled(LabelledSource(path=str(PARQUET)), "verifier.train")
    assert len(rows) == 8
    assert rows[0] == {"question": "What is 12 + 30?", "solution": "12 + 30 = 42.", "answer": "42",
                       "is_correct": True, "group": "row1"}
    assert [r["is_correct"] for r in rows].count(False) == 4


def test_hub_layout_folder_loads_through_datasets():
    rows = read_labelled(LabelledSource(path=str(FIXTURE), split="train", limit=3), "verifier.eval")
    assert [r["answer"] for r in rows] == ["42", "43", "24"]


def test_field_mapping_and_string_labels(tmp_path):
    path = tmp_path / "mine.jsonl"
    records = [{"problem": "1+1?", "work": "2", "ok": "true"}, {"problem": "2+2?", "work": "5", "ok": "0"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    src = LabelledSource(path=str(path), fields={"question": "problem", "solution": "work", "label": "ok"})
    rows = read_labelled(src, "verifier.train")
    assert [(r["question"], r["solution"], r["answer"], r["is_correct"]) for r in rows] == [
        ("1+1?", "2", "", True), ("2+2?", "5", "", False)]


def test_bad_label_is_one_line_naming_file_row_and_key(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q", "solution": "s", "is_correct": True}) + "\n"
                    + json.dumps({"question": "q2", "solution": "s", "is_correct": "maybe"}) + "\n")
    with pytest.raises(DataError) as err:
        read_labelled(LabelledSource(path=str(path)), "verifier.train")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (f"verifier.train: {path}: row 2: 'is_correct': expected a boolean label (true/false/1/0), "
                   "got 'maybe'")


def test_missing_label_key_lists_the_keys_there(tmp_path):
    path = tmp_path / "nolabel.jsonl"
    path.write_text(json.dumps({"question": "q", "solution": "s", "correct": 1}) + "\n")
    with pytest.raises(DataError, match=r"row 1: missing key 'is_correct' \(keys there: correct, question, solution\)"):
        read_labelled(LabelledSource(path=str(path)), "verifier.train")


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_labelled(LabelledSource(path=str(tmp_path / "nope.jsonl")), "verifier.train")


def rows(labels_by_group: dict[str, list[bool]]) -> list[dict]:
    return [{"question": f"q{g}", "solution": "s", "answer": "1", "is_correct": y, "group": g}
            for g, labels in labels_by_group.items() for y in labels]


def test_balance_report_counts_labels_and_problem_kinds():
    report = balance_report(rows({"a": [True, True], "b": [False, False, False], "c": [True, False]}))
    assert report == {"rows": 7, "correct": 3, "incorrect": 4, "share_correct": 3 / 7, "problems": 3,
                      "problems_all_correct": 1, "problems_all_incorrect": 1, "problems_mixed": 1}


def test_empty_class_is_an_error_naming_the_missing_label():
    with pytest.raises(DataError, match=r"^verifier training rows: no incorrect \(False\) rows among 3;"):
        check_classes(rows({"a": [True, True, True]}), "verifier training rows")
    with pytest.raises(DataError, match=r"no correct \(True\) rows among 2"):
        check_classes(rows({"a": [False], "b": [False]}), "x")


def test_downsample_and_weight():
    data = rows({"a": [True], "b": [False] * 5, "c": [True, False]})
    kept, weights = balance(data, "downsample", seed=0)
    assert weights is None and sum(r["is_correct"] for r in kept) == 2 and len(kept) == 4
    same, weights = balance(data, "weight", seed=0)
    assert same is data
    assert weights == {True: 8 / 4, False: 8 / 12}  # n / (2 n_c): each class carries half the total weight
    assert balance(data, "none", seed=0) == (data, None)


def test_held_out_questions_are_dropped_from_training():
    train = [{"question": "What is 2 + 2?"}, {"question": "what is 2+2"}, {"question": "What is 3 + 3?"}]
    kept, dropped = drop_shared_questions(train, [{"question": "What is 2 + 2 ?"}])
    assert dropped == 2 and kept == [{"question": "What is 3 + 3?"}]


def test_rows_from_samples_skip_ungradable_and_keep_sample_order():
    recs = [
        {"index": 1, "sample": 1, "question": "q1", "completion": "c11", "extracted": "5", "correct": True},
        {"index": 1, "sample": 0, "question": "q1", "completion": "c10", "extracted": None, "correct": False},
        {"index": 0, "sample": 0, "question": "q0", "completion": "c00", "extracted": "3", "correct": None},
    ]
    out = rows_from_samples(recs, "eval")
    assert [(r["solution"], r["answer"], r["is_correct"], r["group"]) for r in out] == [
        ("c10", "", False, "eval1"), ("c11", "5", True, "eval1")]


def recipe_file(tmp_path, verifier: dict) -> str:
    import yaml

    path = tmp_path / "r.yaml"
    data = {"data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}}, "verifier": verifier}
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("verifier, message", [
    ({"prompt": "Is {solution} right?"}, "verifier.prompt: needs the placeholder {question}"),
    ({"prompt": "{question} {solution} {gold}"}, "verifier.prompt: unknown placeholder {gold}"),
    ({"train": {"path": "x.jsonl", "fields": {"correct": "y"}}}, "verifier.train.fields: unknown field 'correct'"),
    ({"eval": {"split": "test"}}, "verifier.eval: needs `path`"),
    ({"true_word": "Yes", "false_word": "Yes"}, "verifier.true_word and verifier.false_word must be two different"),
    ({"head": "value"}, "verifier.head: expected 'lm' or 'seq_cls'"),
    ({"balance": "upsample"}, "verifier.balance"),
])
def test_bad_verifier_block_is_one_line(tmp_path, verifier, message):
    with pytest.raises(UserError) as err:
        load_recipe(recipe_file(tmp_path, verifier), kind="verifier")  # as `mathtune verifier` reads it
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, rank", [("verifier/llama31_8b_verifier_r16", 16), ("verifier/llama31_8b_verifier_r64", 64)])
def test_seed_setting_recipes(name, rank):
    recipe = load_recipe(name)
    assert recipe.model == "meta-llama/Llama-3.1-8B" and recipe.quantization.load_in_4bit
    assert recipe.lora.r == rank
    t = recipe.trainer
    assert (t["learning_rate"], t["per_device_train_batch_size"], t["gradient_accumulation_steps"], t["max_steps"]) == (
        2e-4, 4, 4, 1500)
    v = recipe.verifier
    assert v.head == "lm" and (v.true_word, v.false_word) == ("True", "False") and "True" in v.prompt
    assert v.train.hub == v.eval.hub == "ad6398/nyu-dl-teach-maths-comp" and v.train.keys()["label"] == "is_correct"


def test_tiny_recipe_samples_more_solutions_for_held_out_problems():
    recipe = load_recipe("tiny/verifier_default")
    assert recipe.model == "default" and recipe.verifier.train is None and recipe.verifier.eval is None
    assert recipe.verifier.sampling.eval_samples == 8
    assert recipe.data.eval["seed"] - recipe.data.train["seed"] >= recipe.data.train["size"]
