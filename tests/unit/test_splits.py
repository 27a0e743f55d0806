"""Splits: a question reworded only in case, spacing or number format still counts as the same question."""

from __future__ import annotations

import pytest

from mathtune.data.sources import DataError, load_source, make_row
from mathtune.data.splits import check_no_overlap, dedup, drop_overlap, normalize_question, train_eval_split


def rows(*questions: str) -> list[dict]:
    return [make_row(q, str(i), "", "test") for i, q in enumerate(questions)]


@pytest.mark.parametrize(
    "a, b",
    [
        ("What is 2 + 3?", "what is 2+3"),
        ("  A  farm has\n12 cows. ", "a farm has 12 cows"),
        ("It costs $1,250.", "It costs $ 1250"),
        ("Split 4.50 dollars.", "split 4.5 dollars"),
        ("He ran 5.0 km!", "he ran 5 km"),
        ("State the answer: 4 - 1 - 7 =", "state the answer: 4-1-7="),
        ("\u201cHow many?\u201d", "how many"),
        ("Total of 1,000,000 and 2,000", "total of 1000000 and 2000"),
    ],
)
def test_normalize_question_merges_formatting_variants(a, b):
    assert normalize_question(a) == normalize_question(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("What is 2 + 3?", "What is 2 + 4?"),
        ("What is 10.05?", "What is 10.5?"),
        ("List 1,2,3", "List 123"),
        ("What is -5 + 3?", "What is 5 + 3?"),
        ("Compute 3.14", "Compute 314"),
    ],
)
def test_normalize_question_keeps_different_questions_apart(a, b):
    assert normalize_question(a) != normalize_question(b)


def test_dedup_keeps_the_first_of_each_question_in_order():
    pool = rows("What is 1+1?", "Name a prime.", "what is 1 + 1", "Name a prime!", "Name an even number.")
    assert [r["answer"] for r in dedup(pool)] == ["0", "1", "4"]


def test_check_no_overlap_passes_disjoint_sets():
    check_no_overlap(rows("What is 1+1?", "What is 2+2?"), rows("What is 3+3?"))


def test_check_no_overlap_names_count_and_an_example():
    train = rows("What is 1+1?", "What is 2+2?", "What is 3+3?")
    evals = rows("What is 9+9?", "WHAT IS 2 + 2", "what is 3+3?")
    with pytest.raises(DataError) as info:
        check_no_overlap(train, evals, where="data.eval")
    message = str(info.value)
    assert message.startswith("data.eval: 2 of 3 eval questions also appear in train, e.g. 'WHAT IS 2 + 2'")
    assert "\n" not in message


def test_check_no_overlap_shortens_a_long_example():
    question = "A very long question " * 10
    with pytest.raises(DataError, match=r"e\.g\. '.{77}\.\.\.'"):
        check_no_overlap(rows(question), rows(question))


def test_drop_overlap_removes_colliding_train_rows_only():
    train = rows("What is 1+1?", "What is 2+2?", "what is 2 + 2.", "What is 4+4?")
    evals = rows("What is 2+2?", "What is 5+5?")
    kept, dropped = drop_overlap(train, evals)
    assert dropped == 2
    assert [r["question"] for r in kept] == ["What is 1+1?", "What is 4+4?"]
    assert len(evals) == 2 and len(train) == 4  # inputs untouched
    check_no_overlap(kept, evals)


def test_train_eval_split_is_disjoint_sized_and_seeded():
    pool = rows(*(f"What is {i} + {i}?" for i in range(50)))
    train, evals = train_eval_split(pool, 10, seed=0)
    assert len(train) == 40 and len(evals) == 10
    check_no_overlap(train, evals)
    assert sorted(r["answer"] for r in train + evals) == sorted(r["answer"] for r in pool)
    assert train_eval_split(pool, 10, seed=0) == (train, evals)
    assert train_eval_split(pool, 10, seed=1)[1] != evals
    # both sides keep the pool's order
    assert [int(r["answer"]) for r in evals] == sorted(int(r["answer"]) for r in evals)


def test_train_eval_split_moves_duplicates_together():
    pool = rows(*(f"Question {i}." for i in range(20)), *(f"question {i}" for i in range(20)))
    for seed in range(5):
        train, evals = train_eval_split(pool, 0.25, seed=seed)
        check_no_overlap(train, evals)
        assert len(evals) == 10 and len(train) == 30  # 5 questions x 2 copies each


@pytest.mark.parametrize("eval_size", [0, -3, 1.5, 0.0, 10, True])
def test_train_eval_split_rejects_impossible_sizes(eval_size):
    with pytest.raises(DataError, match=r"^eval_size: "):
        train_eval_split(rows(*(f"q{i}" for i in range(10))), eval_size, seed=0)


def test_reasoning_gym_seeds_can_collide_on_easy_tasks_and_drop_overlap_fixes_it():
    # one-digit sums of two terms: only a few hundred distinct problems, so two seeds share some
    easy = {
        "source": "reasoning_gym",
        "task": "chain_sum",
        "size": 200,
        "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    }
    train = load_source({**easy, "seed": 1})
    evals = load_source({**easy, "seed": 2})
    with pytest.raises(DataError, match=r"eval questions also appear in train"):
        check_no_overlap(train, evals)
    kept, dropped = drop_overlap(train, evals)
    assert 0 < dropped < len(train) and len(kept) == len(train) - dropped
    check_no_overlap(kept, evals)
