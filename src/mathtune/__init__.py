"""mathtune: fine-tune small language models for math reasoning, and measure it honestly."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The grader is the public entry point most users want alone; import it lazily so `import mathtune` stays light.
    if name in {"grade", "grade_detailed", "GradeResult", "GoldUnparseableError"}:
        from mathtune import answers

        return getattr(answers, name)
    raise AttributeError(f"module 'mathtune' has no attribute {name!r}")


__all__ = ["__version__", "grade", "grade_detailed", "GradeResult", "GoldUnparseableError"]
