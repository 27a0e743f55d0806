"""Prompt formats: targets end in EOS, markers, think traces; train and eval prompts are the same text."""

from __future__ import annotations

from support.tiny import tiny_tokenizer

from mathtune.answers import grade
from mathtune.config import FormatConfig
from mathtune.data.formats import build_prompt, build_target, to_prompt_completion

ROW = {"question": "What is 2 + 3?", "answer": "5", "solution": "2 + 3 = 5", "source": "t"}


def test_every_format_ends_in_eos_and_grades_correct():
    tok = tiny_tokenizer()
    for template in ("chat", "instruction"):
        for reasoning in ("cot", "think", "answer_only"):
            for marker in ("hash", "boxed"):
                fmt = FormatConfig(template=template, reasoning=reasoning, answer_marker=marker)
                pair = to_prompt_completion([ROW], fmt, tok)[0]
                assert pair["completion"].endswith(tok.eos_token)
                assert grade(pair["completion"].removesuffix(tok.eos_token), "5")
                assert ROW["question"] in pair["prompt"]


def test_markers_and_reasoning_styles():
    eos = "</s>"
    assert build_target(ROW, FormatConfig(), eos) == "2 + 3 = 5\n#### 5</s>"
    assert build_target(ROW, FormatConfig(answer_marker="boxed"), eos) == "2 + 3 = 5\nThe final answer is $\\boxed{5}$.</s>"
    assert build_target(ROW, FormatConfig(reasoning="think"), eos) == "<think>\n2 + 3 = 5\n</think>\n#### 5</s>"
    assert build_target(ROW, FormatConfig(reasoning="answer_only"), eos) == "#### 5</s>"
    assert build_target({**ROW, "solution": ""}, FormatConfig(), eos) == "#### 5</s>"


def test_instruction_template_and_chat_template():
    tok = tiny_tokenizer()
    prompt = build_prompt("Q?", FormatConfig(template="instruction", instruction=""), tok)
    assert prompt == "### Instruction:\nQ?\n\n### Response:\n"
    chat = build_prompt("Q?", FormatConfig(system_prompt="Be brief."), tok)
    assert chat.startswith("<s>Be brief.\n<u>Q?") and chat.endswith("<a>")
