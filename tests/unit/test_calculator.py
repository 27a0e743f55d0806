"""GSM8K's calculator: what it computes, how it writes values, when it writes at all."""

from __future__ import annotations

import pytest

from mathtune.eval.calculator import answer_note, count_notes, evaluate, show


@pytest.mark.parametrize("expression, value", [
    ("48/2", 24.0), ("15*.2", 3.0), ("(3+4)*12", 84.0), ("0.40+0.85", 1.25), ("2/5*50", 20.0), ("-3+1", -2.0),
    ("18+6+8+7", 39.0), (" 65*10/100 ", 6.5),
])
def test_evaluate_does_the_arithmetic_of_gsm8k_notes(expression, value):
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize("expression", ["5/0", "2**999", "9**9**9", "__import__('os')", "a+1", "3+", "", "1e300*1e300",
                                        "[1]", "True+1"])
def test_evaluate_refuses_what_is_not_plain_arithmetic(expression):
    assert evaluate(expression) is None


@pytest.mark.parametrize("value, text", [(24.0, "24"), (2.5, "2.5"), (3.0, "3"), (10 / 3, "3.3333"), (-0.5, "-0.5"),
                                         (-0.00001, "0"), (1e12, "1000000000000")])
def test_show_writes_values_as_gsm8k_notes_do(value, text):
    assert show(value) == text


@pytest.mark.parametrize("text, note", [
    ("Natalia sold 48/2 = <<48/2=", "24>>"),
    ("so <<(3+4)*12=", "84>>"),
    ("<<10/3=", "3.3333>>"),
    ("x = 4 so 4*3=", None),            # no open note: the model's own arithmetic is left alone
    ("<<48/2=24>> and 5*5=", None),     # the last note is closed
    ("<<5/0=", None),                   # no value: the model goes on by itself
    ("<<20%*100=", None),               # % is not in GSM8K's notes (percent or modulo?): left alone
    ("<<48/2", None),                   # not at the `=` yet
])
def test_answer_note_completes_only_an_open_note_at_its_equals_sign(text, note):
    assert answer_note(text) == note


def test_count_notes_counts_closed_notes():
    assert count_notes("48/2 = <<48/2=24>>24 and <<24+48=72>>72, then <<7*") == 2
    assert count_notes("no notes here") == 0
