"""Generation on a tiny random Llama: batching, order, seeds, n samples, EOS, stop strings, truncation, peft."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from mathtune.errors import UserError
from mathtune.eval.generate import GenerationConfig, HFGenerator, make_generator

PROMPTS = ["Q: 2+3=?\nA:", "What is 17*3? Think.", "x", "A much longer prompt about apples and pears: how many?", "ab"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: a second thread only adds sync cost, and 30x more when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer over printable ASCII plus <pad>, <eos>, <unk>: built offline in milliseconds."""
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{chr(c): c - 29 for c in range(32, 127)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=98, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, initializer_range=0.5, eos_token_id=1, pad_token_id=None, bos_token_id=None,
    )  # a wide init gives varied tokens (a default-init random model repeats one token forever)
    return LlamaForCausalLM(config).eval()


ENGINES = ["continuous", "continuous-tight-slab", "padded-generate"]


@pytest.fixture(params=ENGINES)
def engine(request, monkeypatch) -> str:
    """Run a test on each path: continuous batching, the same with a slab that must slide left almost every step,
    and the left-padded `model.generate` fallback."""
    from mathtune.eval import continuous

    if request.param == "continuous-tight-slab":
        monkeypatch.setattr(continuous, "SLACK", 1)
    if request.param == "padded-generate":
        monkeypatch.setattr(continuous, "supported", lambda model: False)
    return request.param


def reference(model, tokenizer, prompt: str, max_new_tokens: int, eos: tuple[int, ...] = (1,)) -> list[int]:
    """Unbatched greedy `model.generate`: the ground truth every batched path must reproduce (ids up to EOS)."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=1, eos_token_id=list(eos))
    new = out[0, ids.shape[1]:].tolist()
    return next((new[: i + 1] for i, t in enumerate(new) if t in eos), new)


def greedy(model, tokenizer, prompts=PROMPTS, **kw):
    config = GenerationConfig(**{"max_new_tokens": 24, **kw})
    return HFGenerator(model, tokenizer).generate(prompts, config, progress=False)


def test_batched_greedy_matches_unbatched_generate_in_prompt_order(model, tokenizer):
    for batch_size in (1, 2, 16):
        out = greedy(model, tokenizer, batch_size=batch_size)
        assert [len(c) for c in out] == [1] * len(PROMPTS)
        for prompt, (completion,) in zip(PROMPTS, out):
            ids = reference(model, tokenizer, prompt, 24)
            assert completion.text == tokenizer.decode(ids, skip_special_tokens=True)
            assert completion.num_tokens == len(ids)


def test_rows_ending_at_different_steps_match_unbatched(model, tokenizer, engine):
    """A frequent token made EOS ends rows at different steps: slots are refilled, the slab shrinks and slides."""
    from collections import Counter

    prompts = PROMPTS + [p[::-1] for p in PROMPTS]
    counts = Counter(t for p in prompts for t in reference(model, tokenizer, p, 40)[5:])
    eos = (1, counts.most_common(1)[0][0])
    model.generation_config.eos_token_id = list(eos)
    try:
        out = greedy(model, tokenizer, prompts, max_new_tokens=40, batch_size=3)
    finally:
        model.generation_config.eos_token_id = 1
    lengths = set()
    for prompt, (completion,) in zip(prompts, out):
        ids = reference(model, tokenizer, prompt, 40, eos)
        assert completion.text == tokenizer.decode(ids[:-1] if ids[-1] in eos else ids, skip_special_tokens=True)
        assert completion.num_tokens == len(ids)
        assert completion.truncated == (ids[-1] not in eos)
        lengths.add(len(ids))
    assert len(lengths) > 3  # the rows really did end at different steps


def test_model_is_left_as_it_was(model, tokenizer):
    before = model.config._attn_implementation
    greedy(model, tokenizer, max_new_tokens=3)
    assert model.config._attn_implementation == before
    assert not any("forward" in m.__dict__ for m in model.modules())  # the prepacked linears are unhooked


def test_greedy_n_gives_n_identical_completions(model, tokenizer):
    out = greedy(model, tokenizer, n=3)
    assert all(len(c) == 3 and c[0] == c[1] == c[2] for c in out)


def test_sampling_is_seeded_and_gives_n_samples(model, tokenizer):
    sample = dict(temperature=1.0, top_p=0.95, n=4, batch_size=3)
    a = greedy(model, tokenizer, seed=7, **sample)
    b = greedy(model, tokenizer, seed=7, **sample)
    c = greedy(model, tokenizer, seed=8, **sample)
    assert a == b
    assert a != c
    assert all(len(s) == 4 for s in a)
    assert len({s.text for s in a[0]}) > 1  # the n samples of a prompt differ
    assert greedy(model, tokenizer, seed=7, **{**sample, "batch_size": 16}) == a  # a generator per sample
    assert greedy(model, tokenizer, PROMPTS[2:], seed=7, **sample) == a[2:]  # chunking the prompts changes nothing


def test_truncated_when_max_new_tokens_hit(model, tokenizer):
    out = greedy(model, tokenizer, max_new_tokens=5)
    for (completion,) in out:
        assert completion.num_tokens == 5 and completion.truncated


def test_eos_ends_completion_and_counts_as_a_token(model, tokenizer):
    ids = reference(model, tokenizer, PROMPTS[0], 24)
    k = next(i for i in range(2, len(ids)) if ids[i] not in ids[:i])  # a token first seen at k: make it an EOS
    model.generation_config.eos_token_id = [1, ids[k]]
    try:
        completion = greedy(model, tokenizer)[0][0]
    finally:
        model.generation_config.eos_token_id = 1
    assert completion.text == tokenizer.decode(ids[:k], skip_special_tokens=True)
    assert completion.num_tokens == k + 1
    assert not completion.truncated


def test_stop_string_cuts_text_and_is_not_truncation(model, tokenizer, engine):
    for prompt in PROMPTS:
        ids = reference(model, tokenizer, prompt, 12)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        stop = text[4:6]
        # the shortest prefix of ids whose text holds the stop string ends with the stop string's last character
        reach = next(k for k in range(len(ids) + 1) if stop in tokenizer.decode(ids[:k], skip_special_tokens=True))
        (cut,) = greedy(model, tokenizer, [prompt], max_new_tokens=12, stop=["never there", stop])[0]
        assert cut.text == text[: text.find(stop)]
        assert cut.num_tokens == reach
        assert not cut.truncated


def test_peft_wrapped_model_uses_its_adapter(model, tokenizer):
    from peft import LoraConfig, get_peft_model

    from mathtune.eval.continuous import supported

    base = [c[0].text for c in greedy(model, tokenizer)]
    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    try:
        torch.manual_seed(1)
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.5)  # a trained adapter: outputs must now differ from the base model's
        assert supported(wrapped)
        out = greedy(wrapped, tokenizer)
        for prompt, (completion,) in zip(PROMPTS, out):
            assert completion.text == tokenizer.decode(reference(wrapped, tokenizer, prompt, 24),
                                                       skip_special_tokens=True)
        assert [c[0].text for c in out] != base
    finally:
        wrapped.unload()


def test_make_generator_backends(model, tokenizer):
    assert isinstance(make_generator("hf", model, tokenizer), HFGenerator)
    with pytest.raises(UserError, match="unknown generation backend"):
        make_generator("hff", model, tokenizer)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="vllm"):
            make_generator("vllm", model, tokenizer)


def test_a_long_shared_prefix_is_prefilled_once_and_changes_no_greedy_token(model, tokenizer, monkeypatch):
    from mathtune.eval import continuous

    shots = "Q: 1+1?\nA: 2.\n\nQ: 3+4?\nA: 7.\n\nQ: 10-2?\nA: 8.\n\n"  # 48 characters = tokens here
    prompts = [shots + q for q in ("Q: 5+5?\nA:", "Q: 9*9?\nA:", "Q: how many pears?\nA:")]
    monkeypatch.setattr(continuous, "MIN_SHARED_PREFIX", 16)
    calls = []
    real = continuous._shared_prefix
    monkeypatch.setattr(continuous, "_shared_prefix", lambda m, jobs: calls.append(real(m, jobs)) or calls[-1])
    out = greedy(model, tokenizer, prompts, batch_size=2)
    assert calls[0] is not None and calls[0].get_seq_length() >= len(shots)
    for prompt, (completion,) in zip(prompts, out):
        ids = reference(model, tokenizer, prompt, 24)
        assert completion.text == tokenizer.decode([t for t in ids if t != 1])


def test_stop_on_loop_ends_early_and_says_looped(model, tokenizer, engine, monkeypatch):
    from mathtune.eval import generate

    # the random model writes no template loop, so the detector is stood in for: "a loop" from 10, 20 or 30
    # characters on, by the text's first character, so rows stop at different steps (the padded path pads them)
    def fake_loop(text: str) -> bool:
        return len(text) >= 10 * (1 + ord(text[0]) % 3)

    monkeypatch.setattr(generate, "ends_in_template_loop", fake_loop)
    plain = greedy(model, tokenizer, max_new_tokens=40, stop_regex=[], stop=[])
    cut = greedy(model, tokenizer, max_new_tokens=40, stop_on_loop=True)
    step = generate.LOOP_CHECK_EVERY
    for prompt, (full,), (early,) in zip(PROMPTS, plain, cut):
        ids = reference(model, tokenizer, prompt, 40)
        # the first check length at which the stand-in fires on the completion's prefix
        at = next((n for n in range(step, 41, step)
                   if fake_loop(tokenizer.decode(ids[:n], skip_special_tokens=True))), None)
        if at is None or full.num_tokens <= at:  # ended (EOS) or hit the cap before any check fired
            assert early == full
            continue
        assert (early.num_tokens, early.text) == (at, tokenizer.decode(ids[:at], skip_special_tokens=True))
        assert early.looped and not early.truncated
    assert len({c.num_tokens for (c,) in cut if c.looped}) >= 2  # rows stopped at different steps


def test_halts_on_a_template_loop_only_when_asked(tokenizer):
    from mathtune.eval.generate import LOOP_CHECK_EVERY, halts

    loop = "".join(f"They have {a}+7={a + 7} coins in their piggy bank.\n" for a in range(100, 110))
    ids = tokenizer(loop, add_special_tokens=False)["input_ids"]
    ids = ids[: len(ids) - len(ids) % LOOP_CHECK_EVERY]  # a check falls on this length
    assert halts(ids, tokenizer, GenerationConfig(stop_on_loop=True))
    assert not halts(ids, tokenizer, GenerationConfig())
    assert not halts(ids[:-1], tokenizer, GenerationConfig(stop_on_loop=True))  # between checks
    healthy = tokenizer("Each box holds 12 eggs, so 5 boxes hold 5*12=60 eggs. She sells 60-14=46 of them.\n",
                        add_special_tokens=False)["input_ids"]
    assert not halts(healthy[:LOOP_CHECK_EVERY * 8], tokenizer, GenerationConfig(stop_on_loop=True))


def test_for_precision_int8_quantizes_the_linears_and_still_generates(model, tokenizer):
    import copy

    from mathtune.eval.generate import for_precision

    q = for_precision(copy.deepcopy(model), "int8")
    assert not any(type(m) is torch.nn.Linear for m in q.modules())  # every linear layer, the LM head too
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in q.modules())
    (completion,) = greedy(q, tokenizer, ["Q: 2+3=?\nA:"], max_new_tokens=8)[0]
    assert completion.num_tokens >= 1
    assert for_precision(model, "fp32") is model
    with pytest.raises(UserError, match="fp16"):
        for_precision(model, "fp16")


def test_vllm_completions_are_cut_as_the_hf_path_cuts_them(model, tokenizer, monkeypatch, tmp_path):
    """vLLM cannot run the stop regex or the loop stop per token: cut afterwards, they give the HF path's completion."""
    import sys
    from types import SimpleNamespace

    from mathtune.eval import generate

    def fake_loop(text: str) -> bool:  # as in the loop-stop test: fires 10, 20 or 30 characters on
        return len(text) >= 10 * (1 + ord(text[0]) % 3)

    class FakeLLM:  # "generates" what unbatched greedy decoding writes with no stop at all, EOS included
        def __init__(self, model: str, tokenizer: str):
            pass

        def get_tokenizer(self):
            return tokenizer

        def generate(self, token_prompts, params, use_tqdm):
            texts = [tokenizer.decode(p["prompt_token_ids"]) for p in token_prompts]
            return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=reference(model, tokenizer, t, 40))])
                    for t in texts]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=FakeLLM, SamplingParams=lambda **kw: kw))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(generate, "ends_in_template_loop", fake_loop)
    vllm = make_generator("vllm", str(tmp_path), tokenizer)
    for kw in ({"stop_on_loop": True}, {"stop_regex": [r"[aeiou]{2}"]}, {"stop": ["e"], "stop_on_loop": True}, {}):
        config = GenerationConfig(max_new_tokens=40, **kw)
        hf = HFGenerator(model, tokenizer).generate(PROMPTS, config, progress=False)
        assert vllm.generate(PROMPTS, config, progress=False) == hf, kw
    looped = vllm.generate(PROMPTS, GenerationConfig(max_new_tokens=40, stop_on_loop=True), progress=False)
    assert any(c.looped for (c,) in looped)  # the cut really happened in this case table


def _greedy_ids(model, ids: list[int], max_new_tokens: int) -> list[int]:
    """Unbatched greedy continuation of raw ids, up to and including EOS (id 1)."""
    t = torch.tensor([ids])
    out = model.generate(input_ids=t, attention_mask=torch.ones_like(t), max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=1, eos_token_id=1)[0, len(ids):].tolist()
    return next((out[: i + 1] for i, tok in enumerate(out) if tok == 1), out)


def test_calculator_ids_are_fed_in_place_of_picked_ones_and_decoding_goes_on_from_them(model, tokenizer,
                                                                                      monkeypatch):
    """What a tool writes is then read by the model as its own: the rest equals unbatched decoding from there."""
    from mathtune.eval import generate

    note = tokenizer("<<7>>", add_special_tokens=False)["input_ids"]
    fire_at = {3, 9, 16}  # generated lengths after which the stand-in tool writes; 5 rows in 3 slots overlap them

    def tool(ids):
        return list(note) if len(ids) in fire_at and ids[-1] != note[-1] else []

    monkeypatch.setattr(generate, "calculator_tokens", lambda ids, tok: tool(ids))
    out = greedy(model, tokenizer, max_new_tokens=30, calculator=True, batch_size=3, stop=[], stop_regex=[])
    inserted = 0
    for prompt, (completion,) in zip(PROMPTS, out):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids: list[int] = []  # the reference: unbatched greedy one id at a time, the tool's ids appended after it fires
        while len(ids) < 30:
            ids += _greedy_ids(model, prompt_ids + ids, 1)
            if ids[-1] == 1:
                break
            written = tool(ids)
            inserted += bool(written)
            ids += written
        expect = tokenizer.decode([t for t in ids[:30] if t != 1], skip_special_tokens=True)
        assert completion.text == expect
        assert completion.num_tokens == len(ids[:30])
    assert inserted >= 5  # the tool did fire, in every row or more than once in some


def test_calculator_needs_the_continuous_engine(model, tokenizer, monkeypatch):
    from mathtune.eval import continuous

    monkeypatch.setattr(continuous, "supported", lambda model: False)
    with pytest.raises(UserError, match="eval.calculator"):
        greedy(model, tokenizer, calculator=True)


def test_calculator_tokens_answer_an_open_note_with_the_value_and_close_it(tokenizer):
    from mathtune.eval.calculator import calculator_tokens

    ids = tokenizer("so 48/2 = <<48/2=", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(calculator_tokens(ids, tokenizer)) == "24>>"
    assert calculator_tokens(ids[:-1], tokenizer) == []  # not at `=` yet
    assert calculator_tokens(tokenizer("4*3=", add_special_tokens=False)["input_ids"], tokenizer) == []
