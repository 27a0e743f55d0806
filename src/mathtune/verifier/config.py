"""The recipe's `verifier:` block: which head, which prompt, where labelled rows come from, how to balance them."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mathtune.config import RECIPE_KINDS, Recipe
from mathtune.schema import Strict
from mathtune.train.sft_config import check_sft_trainer

# The solution is judged as the model would read it; {answer} (the extracted or given final answer) is optional.
DEFAULT_PROMPT = (
    "Here is a math problem and a proposed solution.\n\nProblem:\n{question}\n\nSolution:\n{solution}\n\n"
    "Is the solution correct? Answer True or False."
)
PROMPT_FIELDS = ("question", "solution", "answer")
# our name -> the file's key; the default is the NYU-DL-Teach-Maths-Comp schema, which our own files also use
DEFAULT_FIELDS = {"question": "question", "solution": "solution", "answer": "answer", "label": "is_correct"}


class LabelledSource(Strict):
    """Already labelled solutions: a local JSONL/JSON/Parquet file or folder, or a hub dataset (with `split`)."""

    path: str | None = None
    hub: str | None = None  # e.g. ad6398/nyu-dl-teach-maths-comp; `path` wins when both are given (a local copy)
    split: str = "train"
    fields: dict[str, str] = {}  # question, solution, answer, label -> the file's keys (see DEFAULT_FIELDS)
    limit: int | None = Field(None, gt=0)

    def keys(self) -> dict[str, str]:
        """Our name -> the source's key, defaults filled in."""
        return {**DEFAULT_FIELDS, **self.fields}


class SamplingConfig(Strict):
    """Generated labels: k sampled solutions per problem of data.train / data.eval, graded by the evaluation grader."""

    model: str | None = None  # the generator; None = the recipe's `model`
    adapter: str | None = None  # a LoRA adapter for the generator (e.g. a tuned run's RUN/adapter)
    samples: int = Field(4, gt=0)  # per training problem
    eval_samples: int = Field(8, gt=0)  # per held-out problem: rows for verifier metrics and best-of-N at N<=this
    temperature: float = Field(0.8, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(512, gt=0)
    batch_size: int = Field(16, gt=0)
    seed: int = 0


class VerifierConfig(Strict):
    """How a verifier reads a (question, solution) pair and what it is trained on."""

    head: Literal["lm", "seq_cls"] = "lm"  # lm: P(True) over the two answer words; seq_cls: a 2-way `score` layer
    prompt: str = DEFAULT_PROMPT  # placeholders {question} {solution} {answer}; wrapped in format.template
    true_word: str = "True"  # lm head: the first token of each word is what the score compares
    false_word: str = "False"
    max_length: int = Field(1024, gt=8)  # tokens; longer inputs lose their start (the question), never the end
    train: LabelledSource | None = None  # labelled rows to train on; None = sample them (see `sampling`)
    eval: LabelledSource | None = None  # held-out labelled rows; None = sample them from data.eval
    sampling: SamplingConfig = SamplingConfig()
    balance: Literal["none", "downsample", "weight"] = "none"  # of the training labels
    score_batch_size: int = Field(16, gt=0)

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, prompt: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
        unknown = sorted(names - set(PROMPT_FIELDS))
        if unknown:
            raise ValueError(f"verifier.prompt: unknown placeholder {{{unknown[0]}}}; expected {{question}}, "
                             "{solution} and optionally {answer} (write {{ and }} for literal braces)")
        missing = [n for n in ("question", "solution") if n not in names]
        if missing:
            raise ValueError(f"verifier.prompt: needs the placeholder {{{missing[0]}}}")
        return prompt

    @field_validator("train", "eval")
    @classmethod
    def _source(cls, src: LabelledSource | None, info) -> LabelledSource | None:
        # checked here, not in LabelledSource, so that the message can name its key (verifier.train / verifier.eval)
        if src is None:
            return src
        where = f"verifier.{info.field_name}"
        unknown = sorted(set(src.fields) - set(DEFAULT_FIELDS))
        if unknown:
            raise ValueError(f"{where}.fields: unknown field {unknown[0]!r}; expected some of {', '.join(DEFAULT_FIELDS)}")
        if src.path is None and src.hub is None:
            raise ValueError(f"{where}: needs `path` (a local file or folder) or `hub` (a dataset id)")
        return src

    @model_validator(mode="after")
    def _distinct_words(self) -> "VerifierConfig":
        if self.true_word == self.false_word or not self.true_word or not self.false_word:
            raise ValueError("verifier.true_word and verifier.false_word must be two different, non-empty words")
        return self


@RECIPE_KINDS.register("verifier")
class VerifierRecipe(Recipe):
    """A verifier (`mathtune verifier data|train`): labelled solutions and a LoRA judge trained with trl.SFTConfig's
    arguments (the `trainer:` block, checked against it)."""

    kind: Literal["verifier"] = "verifier"
    verifier: VerifierConfig = VerifierConfig()
    trainer_check = staticmethod(check_sft_trainer)
