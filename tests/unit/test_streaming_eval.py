"""Streaming evaluation on a tiny random Llama: each completion is written as it ends, a kill loses only what was
in flight, and a resumed run leaves the same samples and summary as an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from mathtune.config import EvalConfig, FormatConfig
from mathtune.eval.generate import GenerationConfig, HFGenerator
from mathtune.eval.runner import SAMPLES_FILE, evaluate
from support.tiny import tiny_model, tiny_tokenizer

ROWS = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in
        [(1, 2), (30, 4), (5, 5), (12, 19), (7, 0), (2, 2), (40, 1), (9, 8), (3, 33), (11, 11)]]
FMT = FormatConfig(template="instruction")


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    model = tiny_model()
    for p in model.parameters():  # a wide init gives varied tokens (a default-init random model repeats one token)
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def test_stream_yields_every_prompt_and_sample_exactly_once(model, tokenizer):
    prompts = [r["question"] for r in ROWS]
    for temperature in (0.0, 0.9):
        config = GenerationConfig(max_new_tokens=12, n=3, batch_size=4, temperature=temperature, seed=1)
        keys = [(i, k) for i, k, _ in HFGenerator(model, tokenizer).stream(prompts, config, progress=False)]
        assert sorted(keys) == [(i, k) for i in range(len(prompts)) for k in range(3)]


def test_stream_hands_over_each_completion_before_the_queue_is_done(model, tokenizer):
    prompts = [r["question"] for r in ROWS]
    config = GenerationConfig(max_new_tokens=16, batch_size=3)
    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        seen_at = [len(calls) for _ in HFGenerator(model, tokenizer).stream(prompts, config, progress=False)]
    finally:
        hook.remove()
    assert len(seen_at) == len(prompts)
    assert seen_at[0] < len(calls) / 2  # the first completion came out long before the last forward pass


def test_sampled_completions_do_not_depend_on_batch_size(model, tokenizer):
    prompts = [r["question"] for r in ROWS]
    texts = []
    for batch_size in (1, 3, 16):
        config = GenerationConfig(max_new_tokens=12, n=2, batch_size=batch_size, temperature=0.8, top_p=0.9, seed=7)
        out = HFGenerator(model, tokenizer).generate(prompts, config, progress=False)
        texts.append([[c.text for c in row] for row in out])
    assert texts[0] == texts[1] == texts[2]


class Killed(Exception):
    pass


class KillAfter:
    """A generator that dies (as a kill -9 would, from the runner's view) after handing over k completions."""

    def __init__(self, inner: HFGenerator, k: int):
        self.inner, self.k = inner, k

    def stream(self, prompts, config, progress=True):
        for n, item in enumerate(self.inner.stream(prompts, config, progress)):
            if n == self.k:
                raise Killed
            yield item


@pytest.mark.parametrize("samples,temperature", [(1, 0.0), (3, 0.9)])
def test_kill_then_resume_gives_the_uninterrupted_samples_and_summary(model, tokenizer, tmp_path, samples, temperature):
    cfg = EvalConfig(max_new_tokens=12, batch_size=3, samples=samples, temperature=temperature, seed=3)
    whole = evaluate(model, tokenizer, ROWS, FMT, cfg, tmp_path / "whole")
    with pytest.raises(Killed):
        evaluate(model, tokenizer, ROWS, FMT, cfg, tmp_path / "cut", generator=KillAfter(HFGenerator(model, tokenizer), 7))
    written = (tmp_path / "cut" / SAMPLES_FILE).read_text().splitlines()
    assert len(written) == 7  # every completion handed over before the kill is on disk
    resumed = evaluate(model, tokenizer, ROWS, FMT, cfg, tmp_path / "cut")
    assert resumed == whole
    assert (tmp_path / "cut" / SAMPLES_FILE).read_text() == (tmp_path / "whole" / SAMPLES_FILE).read_text()
    records = [json.loads(line) for line in (tmp_path / "whole" / SAMPLES_FILE).read_text().splitlines()]
    assert [(r["index"], r["sample"]) for r in records] == [(i, k) for i in range(len(ROWS)) for k in range(samples)]


def test_a_torn_last_line_is_redone(model, tokenizer, tmp_path):
    cfg = EvalConfig(max_new_tokens=8, batch_size=4)
    whole = evaluate(model, tokenizer, ROWS, FMT, cfg, tmp_path / "a")
    path = tmp_path / "a" / SAMPLES_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # a kill in the middle of a write
    assert evaluate(model, tokenizer, ROWS, FMT, cfg, tmp_path / "a") == whole
