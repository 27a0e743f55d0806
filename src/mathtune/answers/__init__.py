"""The answer grader everyone calls: extract a completion's answer, parse the gold, compare. Pure Python, no torch."""

from mathtune.answers.equiv import is_equiv
from mathtune.answers.extract import Extraction, extract_answer, last_boxed, stated_answers
from mathtune.answers.gold import parse_gold
from mathtune.answers.grade import GoldUnparseableError, GradeResult, grade, grade_detailed

__all__ = [
    "Extraction",
    "GoldUnparseableError",
    "GradeResult",
    "extract_answer",
    "grade",
    "grade_detailed",
    "is_equiv",
    "last_boxed",
    "parse_gold",
    "stated_answers",
]
