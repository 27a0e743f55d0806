"""Few-shot prompt sets (Wei et al. 8-shot CoT, lm-eval's GSM8K format) and the stops that end a completion."""

from __future__ import annotations

import json

import pytest

from mathtune.config import EvalConfig, FormatConfig
from mathtune.data.fewshot import WEI_COT, get_prompt_set
from mathtune.data.sources.hub import packaged_gsm8k
from mathtune.errors import UserError
from mathtune.eval.generate import finish
from mathtune.eval.runner import generation_config, prompt_builder


def test_gsm8k_cot_is_lm_evals_layout_with_exemplars_in_order():
    prompt = get_prompt_set("gsm8k-cot", "gsm8k").prompt("How many?", 8)
    assert prompt.startswith("Q: There are 15 trees in the grove.")
    assert prompt.endswith("The answer is 8.\n\nQ: How many?\nA:")
    positions = [prompt.index(q) for q, _ in WEI_COT]
    assert positions == sorted(positions) and prompt.count("\n\nQ: ") == 8
    assert "Q: If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?" \
           "\nA: There are originally 3 cars." in prompt
    two = get_prompt_set("gsm8k-cot", "gsm8k").prompt("How many?", 2)
    assert two.count("The answer is") == 2 and "Leah" not in two


def test_no_exemplar_comes_from_the_test_split():
    test = {json.loads(line)["question"] for line in packaged_gsm8k("test").open()}
    for name in ("gsm8k-cot", "gsm8k-lm-eval"):
        prompt_set = get_prompt_set(name, "gsm8k")
        assert not test & {q for q, _ in prompt_set.exemplars}
    train = [json.loads(line) for line in packaged_gsm8k("train").open()][:5]
    lm_eval = get_prompt_set("gsm8k-lm-eval", "gsm8k").prompt("Q?", 5)
    assert lm_eval.startswith(f"Question: {train[0]['question']}\nAnswer: {train[0]['answer']}\n\nQuestion: ")
    assert lm_eval.endswith("Question: Q?\nAnswer:")


def test_bad_fewshot_requests_are_one_line_errors():
    with pytest.raises(UserError, match="--fewshot 9: prompt set 'gsm8k-cot' has 8 exemplars"):
        prompt_builder(FormatConfig(), EvalConfig(fewshot=9, fewshot_set="gsm8k-cot"), None)
    with pytest.raises(UserError, match="no default exemplars"):
        prompt_builder(FormatConfig(), EvalConfig(fewshot=2), None)
    with pytest.raises(UserError, match="Did you mean 'gsm8k-cot'"):
        prompt_builder(FormatConfig(), EvalConfig(fewshot=2, fewshot_set="gsm8k-cto"), None)


def test_stops_come_from_the_prompt_set_or_the_zero_shot_default():
    fewshot = generation_config(EvalConfig(fewshot=8, fewshot_set="gsm8k-cot"), FormatConfig())
    assert fewshot.stop == ["Q:", "</s>", "<|im_end|>"]
    zero = generation_config(EvalConfig(), FormatConfig())
    assert zero.stop == ["Question:", "Q:"] and zero.stop_regex
    assert generation_config(EvalConfig(stop=[]), FormatConfig(answer_marker="boxed")).stop_regex == []
    assert generation_config(EvalConfig(stop_after_answer=False), FormatConfig()).stop_regex == []


class CharTokenizer:
    """decode() of character ids: enough for finish()."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if i != 0)


@pytest.mark.parametrize("text,expected,stopped", [
    ("18 eggs.\n#### 18\n#### 20\n", "18 eggs.\n#### 18\n", True),        # a second #### line is not graded
    ("So 5.\nQuestion: Tom has", "So 5.\n", True),                       # a new question starts
    ("The answer is 6.\n\nQ: next", "The answer is 6.\n\n", True),
    ("#### 18", "#### 18", False),                                      # no newline yet: the line may go on
    ("no stop at all", "no stop at all", False),
])
def test_finish_cuts_at_the_first_stop(text, expected, stopped):
    cfg = generation_config(EvalConfig(), FormatConfig())
    done = finish([ord(c) for c in text], CharTokenizer(), {0}, cfg.stop, 1000, cfg.stop_regex)
    assert done.text == expected
    assert done.truncated is False
    assert (done.num_tokens < len(text)) == (stopped and expected != text)
