"""Few-shot prompt sets: the published exemplars and formats, so a score here sits beside a leaderboard's.

    mathtune eval --bench gsm8k --fewshot 8                          # Wei et al. 2022 chain of thought (gsm8k-cot)
    mathtune eval --bench gsm8k --fewshot 5 --fewshot-set gsm8k-lm-eval   # lm-eval's `gsm8k` format

A prompt is plain text in the set's own format (lm-eval's `doc_to_text` / target / delimiters), not the chat
template: that is how lm-eval scores a model unless told `--apply_chat_template`. Exemplars never come from a test
split: `gsm8k-cot` carries its eight hand-written problems (lm-eval `gsm8k-cot.yaml`, `first_n`), `gsm8k-lm-eval`
takes the first K problems of GSM8K *train* (lm-eval draws K train problems at random per test question; a fixed
set keeps every prompt's prefix the same, so the figure is comparable in format, not draw for draw).
Register your own with `@register_prompt_set`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from mathtune.errors import UserError
from mathtune.registry import Registry


@dataclass(frozen=True)
class PromptSet:
    """Exemplars and the format that turns them and a question into one prompt."""

    name: str
    exemplars: tuple[tuple[str, str], ...]  # (question, worked answer) in prompt order
    question_format: str  # "Q: {question}\nA:"
    target_delimiter: str = " "  # between the question format and an exemplar's answer
    fewshot_delimiter: str = "\n\n"  # between exemplars, and before the question
    stop: tuple[str, ...] = ()  # lm-eval's `until` for this task
    strict_pattern: str = r"#### (\-?[0-9\.\,]+)"  # lm-eval's strict-match regex for this task

    def prompt(self, question: str, k: int) -> str:
        """The k-shot prompt for `question`: exemplars 1..k in order, then the question, ending where the model writes."""
        if k > len(self.exemplars):
            raise UserError(
                f"--fewshot {k}: prompt set {self.name!r} has {len(self.exemplars)} exemplars; pick at most that many"
            )
        shots = [self.question_format.format(question=q) + self.target_delimiter + a for q, a in self.exemplars[:k]]
        return "".join(s + self.fewshot_delimiter for s in shots) + self.question_format.format(question=question)


PROMPT_SETS: Registry[Callable[[], PromptSet]] = Registry("prompt set")
DEFAULT_SET = {"gsm8k": "gsm8k-cot"}  # benchmark -> the set `--fewshot K` uses when none is named


def register_prompt_set(name: str):
    """Register a factory returning a PromptSet (called only when a recipe selects it)."""
    return PROMPT_SETS.register(name)


@lru_cache(maxsize=None)  # the runner asks for the set's prompts, stops and strict regex: build it (and read files) once
def get_prompt_set(name: str | None, bench: str) -> PromptSet:
    """The named set, or the benchmark's default; a benchmark without exemplars is a one-line error."""
    if name is None:
        if bench not in DEFAULT_SET:
            known = ", ".join(sorted(DEFAULT_SET))
            raise UserError(f"--fewshot: this benchmark has no default exemplars (those with: {known}); "
                            f"name one with --fewshot-set ({', '.join(PROMPT_SETS.names())})")
        name = DEFAULT_SET[bench]
    try:
        return PROMPT_SETS.get(name)()
    except KeyError as err:
        raise UserError(f"--fewshot-set: {err}") from None


# Wei et al. 2022, "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models", Table 20: the eight
# GSM8K exemplars, verbatim as lm-eval's gsm8k_cot task ships them.
WEI_COT = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there "
     "will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been "
     "21 - 15 = 6. The answer is 6."),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39. The answer is 39."),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason "
     "give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The "
     "answer is 8."),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. "
     "The answer is 9."),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers "
     "were added. 9 + 20 is 29. The answer is 29."),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
     "balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he "
     "had 35 - 2 = 33 golf balls. The answer is 33."),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8. The answer is 8."),
)
LM_EVAL_STOP = ("</s>", "<|im_end|>")
LM_EVAL_SHOTS = 8  # exemplars kept for gsm8k-lm-eval (lm-eval's default is 5)


@register_prompt_set("gsm8k-cot")
def gsm8k_cot() -> PromptSet:
    """lm-eval `gsm8k_cot`: Wei et al.'s eight exemplars, "Q: ...\\nA: ... The answer is N."."""
    return PromptSet("gsm8k-cot", WEI_COT, "Q: {question}\nA:", stop=("Q:", *LM_EVAL_STOP),
                     strict_pattern=r"The answer is (\-?[0-9\.\,]+).")


@register_prompt_set("gsm8k-lm-eval")
def gsm8k_lm_eval() -> PromptSet:
    """lm-eval `gsm8k` (5-shot by default): "Question: ...\\nAnswer: <GSM8K solution> #### N", train exemplars."""
    import json

    from mathtune.data.sources.hub import packaged_gsm8k

    with packaged_gsm8k("train").open(encoding="utf-8") as fh:
        records = [json.loads(next(fh)) for _ in range(LM_EVAL_SHOTS)]
    return PromptSet("gsm8k-lm-eval", tuple((r["question"], r["answer"]) for r in records),
                     "Question: {question}\nAnswer:", stop=("Question:", *LM_EVAL_STOP))
