"""Equivalence: the exact numeric path, the symbolic path, and its timeout from threads."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from fractions import Fraction

import pytest

from mathtune.answers import grade_detailed, is_equiv, symbolic
from mathtune.answers.equiv import EquivResult, check
from mathtune.answers.numeric import numbers_match, read_number, to_number

# Parsing succeeds; sympy then tries to simplify a billion-degree rational function and never returns.
PATHOLOGICAL = r"\frac{x^{999999999}}{x^{999999998}+1}"


@pytest.mark.parametrize(
    "text, value",
    [
        ("1,000", Fraction(1000)),
        ("$18", Fraction(18)),
        (r"\$18.50", Fraction(37, 2)),
        ("18%", Fraction(18)),
        (r"18\%", Fraction(18)),
        ("18.0", Fraction(18)),
        ("5 cm", Fraction(5)),
        ("42 (apples)", Fraction(42)),
        ("x = 3", Fraction(3)),
        ("3 + 5 = 8", Fraction(8)),
        ("2x = 6", None),  # an equation that does not state a value
        ("5x - 7y + 11z + 4 = 0", None),
        ("-(1/3)", Fraction(-1, 3)),
        (r"11,\! 111,\! 100", Fraction(11111100)),
        (r"\frac12", Fraction(1, 2)),
        (r"\dfrac{1}{2}", Fraction(1, 2)),
        (r"-\frac{3}{4}", Fraction(-3, 4)),
        (r"\frac{-3}{4}", Fraction(-3, 4)),
        ("1/2", Fraction(1, 2)),
        ("1.5e3", Fraction(1500)),
        (r"1.5 \times 10^{3}", Fraction(1500)),
        ("\u22123", Fraction(-3)),
        (r"\text{18 dollars}", Fraction(18)),
        (r"30^\circ", Fraction(30)),
        ("2 pi", None),
        ("5x", None),
        (r"3\sqrt{2}", None),
        ("3, 4", None),
        ("1,00", None),
        ("(1, 2)", None),
        ("1/0", None),
        ("1e999999999", None),
        ("", None),
        ("five", None),
    ],
)
def test_to_number(text: str, value: Fraction | None) -> None:
    assert to_number(text) == value


@pytest.mark.parametrize(
    "pred, gold, equal",
    [
        ("1450099.5", "1,450,000", False),  # integer gold: exact only
        ("1450000.5", "1450000", False),
        ("18.4", "18", False),
        ("18.0", "18", True),
        ("1000001", "1000000", False),
        ("3.14159", "3.1416", True),  # decimal gold: agree to its stated digits
        ("3.14169", "3.1416", True),  # truncated to the gold's digits
        ("3.15", "3.1416", False),
        ("3.142", "3.1416", False),  # less precise than the gold
        ("3.1417", "3.1416", False),
        ("1/3", "0.33", True),
        ("2.54", "2.5", False),  # a short decimal gold is exact
        ("12.54", "12.5", False),
        ("0.3333", "0.333", False),
        ("0.3333", r"\frac13", True),  # exact fraction gold: a decimal of >= 4 significant digits
        ("0.333", r"\frac13", False),
        ("0.3", "1/3", False),
        ("10/3", "3.3333333333333335", True),  # a program's float: float noise
        ("3.3333", "3.3333333333333335", True),
        ("3.33", "3.3333333333333335", False),
        ("4.3333", "3.3333333333333335", False),  # off by one is never accepted
        ("1450001.3333", "1450000.3333333333", False),
        ("1450000.3333", "1450000.3333333333", True),
        ("1450000", "1450000.3333333333", False),
        ("6", "5.999999999999999", True),
        ("0", "0", True),
        ("1e-9", "0", False),
    ],
)
def test_numbers_match_to_the_golds_precision(pred: str, gold: str, equal: bool) -> None:
    a, b = read_number(pred), read_number(gold)
    assert a is not None and b is not None
    assert numbers_match(a, b) is equal


@pytest.mark.parametrize(
    "text, decimals",
    [("3.50", 2), ("18.0", 1), ("18", None), ("1/3", None), (r"\frac{1}{2}", None), ("1.5e3", None), ("1,000.25", 2)],
)
def test_read_number_keeps_how_it_was_written(text: str, decimals: int | None) -> None:
    number = read_number(text)
    assert number is not None and number.decimals == decimals


@pytest.mark.parametrize(
    "pred, gold, method, equal",
    [
        ("1,000", "1000", "numeric", True),
        (r"\frac12", "0.5", "numeric", True),
        (r"\text{(B)}", "B", "string", True),
        ("[1, 2)", "[1,2)", "string", True),
        (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", "symbolic", True),
        ("(2, 1)", "(1, 2)", "symbolic", False),
        ("", "1", "empty", False),
    ],
)
def test_check_reports_the_deciding_path(pred: str, gold: str, method: str, equal: bool) -> None:
    result = check(pred, gold)
    assert (result.method, result.equal) == (method, equal)


def test_gold_goes_first() -> None:
    # math-verify is asymmetric; an equation prediction is accepted against a value gold, not the other way round.
    assert is_equiv("x=3", "3")
    assert check(r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2").equal


def test_symbolic_timeout_inside_a_thread() -> None:
    assert is_equiv(r"2\sqrt{2}", r"\sqrt{8}")  # worker started, so the clock below is the check alone
    out: dict[str, object] = {}

    def run() -> None:
        start = time.perf_counter()
        out["result"] = grade_detailed(rf"\boxed{{{PATHOLOGICAL}}}", "3", timeout=1.0)
        out["elapsed"] = time.perf_counter() - start

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    result = out["result"]
    assert (result.correct, result.reason) == (False, "timeout"), result
    assert out["elapsed"] < 3.0
    # The killed worker is replaced and the next check is answered normally.
    assert check(r"2\sqrt{2}", r"\sqrt{8}") == EquivResult(True, "match", "symbolic")


def test_concurrent_threads_get_their_own_answers() -> None:
    pairs = [(r"2\sqrt{2}", r"\sqrt{8}", True), (r"3\sqrt{2}", r"\sqrt{8}", False)] * 4
    results: list[bool | None] = [None] * len(pairs)

    def run(i: int) -> None:
        results[i] = is_equiv(pairs[i][0], pairs[i][1])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected for _, _, expected in pairs]


def test_each_concurrent_timeout_is_bounded_by_its_own_timeout() -> None:
    # Issue 16: with one worker serving checks in turn, the 8th of 8 timing-out threads waited 8 timeouts.
    n, timeout = 4, 2.0
    symbolic.warm(n)  # n workers started and idle, so the clock below is the checks alone
    for worker in list(symbolic._idle):
        worker.wait_ready()
    elapsed: list[float] = []
    reasons: list[str] = []

    def run() -> None:
        start = time.perf_counter()
        reasons.append(check(PATHOLOGICAL, "3", timeout=timeout).status)
        elapsed.append(time.perf_counter() - start)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert reasons == ["timeout"] * n
    # Served in turn, the last would take n * timeout = 8 s; the slack is for a loaded machine's scheduling.
    assert max(elapsed) < 2 * timeout + 1.0, elapsed


def test_grader_imports_neither_torch_nor_math_verify_in_process() -> None:
    # Numeric answers only: the symbolic path imports math-verify in its worker process, never here, by design.
    code = (
        "import sys\n"
        "from mathtune.answers import grade\n"
        "assert grade(r'\\boxed{1{,}000}', '#### 1000')\n"
        "bad = [m for m in ('torch', 'math_verify', 'sympy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
