"""The `reasoning_gym` source: procedurally generated problems with exact graders, any reasoning-gym task.

    data:
      train: {source: reasoning_gym, task: chain_sum, size: 5000, seed: 1, config: {min_terms: 3}}
      eval:  {source: reasoning_gym, task: chain_sum, size: 500, seed: 1000000, config: {min_terms: 3}}

reasoning-gym seeds item i with `seed + i`, so two sources whose seed ranges [seed, seed + size) overlap generate
the same items: keep train and eval seeds at least `size` apart (the pipeline drops any overlap that is left).

Each row's meta is {"task": name, "entry": the generated entry as JSON}, so a reward can grade an answer with
`reasoning_gym.get_score_answer_fn(task)(answer, entry)`. The solution is the task's own chain of thought where it
has one (gsm_symbolic), else the expression worked step by step where the entry carries one (chain_sum,
basic_arithmetic), else "".
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import json
import operator
from typing import Any

from pydantic import ValidationInfo, field_validator

from mathtune.data.sources.base import DataError, SourceOptions, make_row, register_source

_RESERVED = ("size", "seed")  # options of their own, never inside `config`


def _tasks() -> dict[str, tuple[type, type]]:
    import reasoning_gym  # noqa: F401  (the import registers every task; it takes about 2 s, so it waits until needed)
    from reasoning_gym.factory import DATASETS

    return DATASETS


class ReasoningGymOptions(SourceOptions):
    """Options of the `reasoning_gym` source."""

    task: str
    size: int
    seed: int
    config: dict[str, Any] = {}

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        tasks = _tasks()
        if task not in tasks:
            close = difflib.get_close_matches(task, list(tasks), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"unknown reasoning-gym task {task!r}.{hint} ({len(tasks)} tasks, e.g. chain_sum)")
        return task

    @field_validator("size")
    @classmethod
    def _positive(cls, size: int) -> int:
        if size < 1:
            raise ValueError(f"expected a positive number of problems, got {size}")
        return size

    @field_validator("config")
    @classmethod
    def _known_config(cls, config: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        task = info.data.get("task")
        if task is None:  # the task itself was invalid; that error is the one to report
            return config
        fields = [f.name for f in dataclasses.fields(_tasks()[task][1]) if f.name not in _RESERVED]
        for key in config:
            if key in _RESERVED:
                raise ValueError(f"{key!r} is an option of its own; move it out of config")
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"task {task!r} has no option {key!r}.{hint} Known: {', '.join(fields)}")
        return config


@register_source("reasoning_gym", ReasoningGymOptions)
def load_reasoning_gym(opts: ReasoningGymOptions) -> list[dict]:
    """Generate `size` entries of `task` with `seed` and map each onto the row schema."""
    import reasoning_gym

    try:
        dataset = reasoning_gym.create_dataset(opts.task, size=opts.size, seed=opts.seed, **opts.config)
    except (AssertionError, TypeError, ValueError) as e:  # the task's config.validate() asserts
        raise DataError(f"reasoning-gym task {opts.task!r} rejected config {opts.config}: {e}") from e
    return [entry_row(opts.task, entry) for entry in dataset]


def entry_row(task: str, entry: dict) -> dict:
    """One reasoning-gym entry as a row; meta keeps the entry (JSON-safe) for `score_answer`."""
    safe = json.loads(json.dumps(entry, default=_json_fallback))
    meta = {"task": task, "entry": safe}
    return make_row(entry["question"], str(entry["answer"]), worked_solution(entry), "reasoning_gym", meta)


def _json_fallback(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    return str(obj)


def worked_solution(entry: dict) -> str:
    """The entry's own chain of thought, else its arithmetic expression worked step by step, else ""."""
    metadata = entry.get("metadata") or {}
    if metadata.get("answer_cot"):
        return cot_text(metadata["answer_cot"])
    expression = metadata.get("expression")
    if isinstance(expression, str):
        return arithmetic_steps(expression, str(entry.get("answer", "")))
    return ""


def cot_text(cot: Any) -> str:
    """A chain of thought given as a list of steps or as text (or a list's repr); its `#### N` line dropped."""
    if isinstance(cot, str) and cot.lstrip().startswith("["):
        with contextlib.suppress(ValueError, SyntaxError):  # else: text that merely starts with a bracket
            cot = ast.literal_eval(cot.strip())
    lines = [str(step).strip() for step in cot] if isinstance(cot, (list, tuple)) else str(cot).splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("####")):
        lines.pop()
    return "\n".join(line.rstrip() for line in lines).strip()


_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def arithmetic_steps(expression: str, answer: str) -> str:
    """Integer arithmetic one operation a line ("4 + 7 = 11\\n11 - 2 = 9"); "" unless it reproduces `answer`."""
    try:
        tree = ast.parse(expression.replace("\u2212", "-"), mode="eval").body
    except SyntaxError:
        return ""
    steps: list[str] = []
    value = _evaluate(tree, steps)
    # a single number has no steps; a result that differs from the gold means we misread the task
    if value is None or not steps or str(value) != answer.strip():
        return ""
    return "\n".join(steps)


def _evaluate(node: ast.AST, steps: list[str]) -> int | None:
    """Value of an integer expression, appending one line per operation; None for anything else."""
    if isinstance(node, ast.Constant):
        return node.value if type(node.value) is int else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _evaluate(node.operand, steps)
        if inner is None or isinstance(node.op, ast.UAdd):
            return inner
        if not isinstance(node.operand, ast.Constant):  # "-5" is a number; "-(3 + 4)" is a step
            steps.append(f"-({inner}) = {-inner}")
        return -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left, steps), _evaluate(node.right, steps)
        if left is None or right is None:
            return None
        op = _OPS[type(node.op)]
        if op == "/":
            # reasoning-gym divides exactly; a remainder would make the step a lie, so give up
            if right == 0 or left % right:
                return None
            result = left // right
        else:
            result = _APPLY[op](left, right)
        shown = f"({right})" if right < 0 else str(right)
        steps.append(f"{left} {op} {shown} = {result}")
        return result
    return None
