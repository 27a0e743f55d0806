"""Prompt formats: a row becomes (prompt text, target text); evaluation uses the very same prompt text.

Templates: the model's chat template (default) or `### Instruction:` / `### Response:`.
Reasoning: chain of thought then a final-answer marker (`#### N` or `\\boxed{N}`), a `<think>...</think>` trace
then the marker, or the marker alone. The target always ends with the tokenizer's EOS so a tuned model stops.
"""

from __future__ import annotations

from mathtune.config import FormatConfig

INSTRUCTIONS = {
    "hash": "Solve the problem step by step. End with a line '#### ' followed by the final answer.",
    "boxed": "Solve the problem step by step. Put the final answer in \\boxed{}.",
}
INSTRUCTION_TEMPLATE = "### Instruction:\n{question}\n\n### Response:\n"


def final_line(answer: str, marker: str) -> str:
    """The final-answer line in the chosen marker style."""
    if marker == "boxed":
        return f"The final answer is $\\boxed{{{answer}}}$."
    return f"#### {answer}"


def user_text(question: str, fmt: FormatConfig) -> str:
    """The question with the format's instruction sentence appended."""
    instruction = INSTRUCTIONS[fmt.answer_marker] if fmt.instruction is None else fmt.instruction
    return f"{question}\n\n{instruction}".strip() if instruction else question


def build_prompt(question: str, fmt: FormatConfig, tokenizer) -> str:
    """Prompt text, generation prompt included, exactly as the model sees it in training and evaluation."""
    text = user_text(question, fmt)
    if fmt.template == "instruction":
        return INSTRUCTION_TEMPLATE.format(question=text)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("format.template: 'chat' needs a tokenizer with a chat template; use 'instruction'")
    messages = [{"role": "system", "content": fmt.system_prompt}] if fmt.system_prompt else []
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_target(row: dict, fmt: FormatConfig, eos_token: str) -> str:
    """Training target: reasoning (per format) and the final-answer line, ending in EOS."""
    solution = row.get("solution", "").strip()
    final = final_line(row["answer"], fmt.answer_marker)
    if fmt.reasoning == "think":
        body = f"<think>\n{solution}\n</think>\n{final}" if solution else final
    elif fmt.reasoning == "cot" and solution:
        body = f"{solution}\n{final}"
    else:
        body = final
    return body + eos_token


def to_prompt_completion(rows: list[dict], fmt: FormatConfig, tokenizer) -> list[dict]:
    """Rows -> TRL's prompt/completion text pairs (loss is taken on the completion only)."""
    return [
        {"prompt": build_prompt(r["question"], fmt, tokenizer), "completion": build_target(r, fmt, tokenizer.eos_token)}
        for r in rows
    ]
