"""Batched text generation for evaluation: n completions per prompt, greedy or seeded sampling, EOS and stop strings.

Used by the eval runner (`mathtune eval <recipe>`); `make_generator("hf" | "vllm", model, tokenizer)` picks a backend.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
import re
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Protocol

import torch

from mathtune.errors import UserError
from mathtune.eval import continuous
from mathtune.eval.calculator import calculator_tokens
from mathtune.eval.continuous import Job
from mathtune.eval.diagnostics import ends_in_template_loop


@dataclass
class GenerationConfig:
    """How to sample; `temperature == 0` means greedy (then the n completions of a prompt are identical)."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    stop: list[str] = field(default_factory=list)  # cut at the first stop string, which is excluded from the text
    # cut just after the first match of one of these regexes (match kept): e.g. a completed `#### N` line, so a
    # model that goes on after its answer ("#### 5\n#### 6...") is graded on the answer it gave first
    stop_regex: list[str] = field(default_factory=list)
    batch_size: int = 64
    # end a sequence once it ends in a template loop (eval/diagnostics.py, signal 3): the rest would be more of the
    # same up to max_new_tokens. Its Completion says `looped`; the loop diagnostic still counts it as a loop
    stop_on_loop: bool = False
    exact_attention: bool = False  # attention row by row, as unbatched decoding does (slower; for exactness checks)
    # GSM8K's calculator: after `<<EXPR=` the value and `>>` are written for the model (eval/calculator.py)
    calculator: bool = False


@dataclass
class Completion:
    text: str
    num_tokens: int  # generated tokens, up to and including EOS or the token that completed a stop string
    truncated: bool  # hit max_new_tokens without EOS or a stop string
    looped: bool = False  # ended early by `stop_on_loop`: neither truncated nor finished, counted apart


class Generator(Protocol):
    """What the eval runner codes against: completions streamed as they finish, or all of them in prompt order."""

    def stream(
        self, prompts: list[str], config: GenerationConfig, progress: bool = True
    ) -> Iterator[tuple[int, int, Completion]]: ...

    def generate(
        self, prompts: list[str], config: GenerationConfig, progress: bool = True
    ) -> list[list[Completion]]: ...


def collect(stream: Iterator[tuple[int, int, Completion]], n_prompts: int, n: int) -> list[list[Completion]]:
    """Gather a stream of `(prompt index, sample, completion)` into n completions per prompt, in prompt order."""
    out: list[list[Completion | None]] = [[None] * n for _ in range(n_prompts)]
    for i, k, completion in stream:
        out[i][k] = completion
    return out  # type: ignore[return-value]


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends a completion: the tokenizer's EOS plus the model's generation_config EOS (int or list)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.update(int(i) for i in ([gen_eos] if isinstance(gen_eos, int) else gen_eos))
    return ids


def finish(ids: list[int], tokenizer: Any, eos: set[int], stop: list[str], max_new_tokens: int,
           stop_regex: list[str] | None = None, stop_on_loop: bool = False) -> Completion:
    """Turn the raw generated ids of one sequence into a Completion: cut at EOS, then at the first stop."""
    stopped = False
    for i, tok in enumerate(ids):
        if tok in eos:
            ids, stopped = ids[:i], True  # the EOS token counts in num_tokens but is not part of the text
            break
    text = tokenizer.decode(ids, skip_special_tokens=True)
    num_tokens = len(ids) + stopped
    cut = _first_stop(text, stop, stop_regex or [])
    if cut >= 0:
        text, stopped = text[:cut], True
        num_tokens = _tokens_to_reach(ids, tokenizer, stop, stop_regex or [])
    elif stop_on_loop and _loop_check(ids, tokenizer):
        # the loop check ended it here, as in `halts`; an EOS right after is the padded fallback's padding
        return Completion(text=text, num_tokens=len(ids), truncated=False, looped=True)
    truncated = not stopped and num_tokens >= max_new_tokens
    return Completion(text=text, num_tokens=num_tokens, truncated=truncated)


def _first_stop(text: str, stop: list[str], stop_regex: list[str]) -> int:
    """Where the text is cut: before the first stop string or after the first stop-regex match; -1 when neither."""
    cuts = [p for p in (text.find(s) for s in stop) if p >= 0]
    cuts += [m.end() for m in (re.search(r, text) for r in stop_regex) if m]
    return min(cuts, default=-1)


def _tokens_to_reach(ids: list[int], tokenizer: Any, stop: list[str], stop_regex: list[str]) -> int:
    """Fewest leading tokens whose text holds a stop (binary search: a stop, once there, stays there)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        text = tokenizer.decode(ids[:mid], skip_special_tokens=True)
        if _first_stop(text, stop, stop_regex) >= 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


REGEX_TAIL = 48  # tokens decoded to look for a stop regex: a final-answer line is far shorter


def contains_stop(ids: list[int], tokenizer: Any, stop: list[str], stop_regex: list[str] | None = None) -> bool:
    """Whether the decoded ids hold a stop; decodes only the tail that a new stop could end in."""
    if not stop and not stop_regex:
        return False
    # a stop string of c characters ends within the last c tokens unless tokens decode to nothing; the margin
    # covers special and partial-UTF-8 tokens. finish() re-checks on the full text, so this only decides when to halt.
    width = max([len(s) + 8 for s in stop] + ([REGEX_TAIL] if stop_regex else []))
    text = tokenizer.decode(ids[-width:], skip_special_tokens=True)
    return _first_stop(text, stop, stop_regex or []) >= 0


LOOP_CHECK_EVERY = 8  # tokens between loop checks: a loop runs on for at most this many tokens before it is cut
LOOP_TAIL_TOKENS = 320  # decoded for the check: five repeats of a 200-character sentence


def _loop_check(ids: list[int], tokenizer: Any) -> bool:
    """The loop stop's test: at a check length, the decoded tail ends in a template loop."""
    if not ids or len(ids) % LOOP_CHECK_EVERY:
        return False
    return ends_in_template_loop(tokenizer.decode(ids[-LOOP_TAIL_TOKENS:], skip_special_tokens=True))


def halts(ids: list[int], tokenizer: Any, config: GenerationConfig) -> bool:
    """Whether generation of this sequence stops now (EOS aside): a stop string or regex, or a template loop."""
    if contains_stop(ids, tokenizer, config.stop, config.stop_regex):
        return True
    return config.stop_on_loop and _loop_check(ids, tokenizer)


def cut_where_halted(ids: list[int], tokenizer: Any, eos: set[int], config: GenerationConfig) -> list[int]:
    """The ids a token-by-token decode would have kept: up to the first EOS or the first length where `halts`.

    For engines that cannot run `halts` while they decode (vLLM has no callback per token): applied afterwards, the
    same rule gives the same completion, only the tokens past the cut were paid for."""
    for n in range(1, len(ids) + 1):
        if ids[n - 1] in eos or halts(ids[:n], tokenizer, config):
            return ids[:n]
    return ids


def _rng(seed: int, prompt: str, sample: int) -> torch.Generator:
    """A generator per (seed, prompt text, sample): a sample does not depend on batch size, on the other prompts
    or on how the caller chunks its prompts (a resumed eval redraws exactly what it lost)."""
    digest = hashlib.sha256(f"{seed}/{sample}/{prompt}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _picker(config: GenerationConfig) -> Callable[[torch.Tensor, list[Job]], list[int]]:
    """Next-token choice for a batch of logits: argmax, or temperature + top-p sampling with each job's generator."""
    if config.temperature == 0.0:
        return lambda logits, jobs: logits.argmax(-1).tolist()

    def pick(logits: torch.Tensor, jobs: list[Job]) -> list[int]:
        probs = torch.softmax(logits.float() / config.temperature, dim=-1)
        if config.top_p < 1.0:  # keep the smallest set of top tokens whose mass reaches top_p (at least one)
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            drop = sorted_probs.cumsum(-1) - sorted_probs >= config.top_p
            probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
        return [int(torch.multinomial(p, 1, generator=job.rng)) for p, job in zip(probs, jobs)]

    return pick


class _StopStrings:
    """A transformers StoppingCriteria (duck-typed) that ends rows whose new text holds a stop (or a loop)."""

    def __init__(self, tokenizer: Any, config: GenerationConfig, prompt_len: int):
        self.tokenizer, self.config, self.prompt_len = tokenizer, config, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        rows = input_ids[:, self.prompt_len :].tolist()
        done = [halts(r, self.tokenizer, self.config) for r in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFGenerator:
    """Generation with a transformers (or peft-wrapped) causal LM on CPU or one GPU, by continuous batching.

    Up to `config.batch_size` rows decode together (mathtune/eval/continuous.py); a row leaves the step it ends and
    the next prompt (longest first) takes its slot, so pass many prompts per call: the last rows of a call run
    alone. On CPU, 32 rows decode ~1.4x more tokens/s than 16 when there are prompts to fill them. Greedy
    answers match unbatched `model.generate` up to the summation order of the batched linears (16/16 and 32/32
    identical on GSM8K, benchmarks/results/eval_speed.md). Models with sliding-window or linear-attention layers
    fall back to left-padded `model.generate` batches.
    """

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        self.eos = eos_token_ids(model, tokenizer)
        if not self.eos:
            raise UserError("the tokenizer has no EOS token, so generation could never end before max_new_tokens")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else min(self.eos)  # pad with EOS when the tokenizer has no pad

    def generate(
        self, prompts: list[str], config: GenerationConfig, progress: bool = True
    ) -> list[list[Completion]]:
        """Return `config.n` completions per prompt, in prompt order (prompts are already chat-formatted)."""
        return collect(self.stream(prompts, config, progress), len(prompts), config.n)

    def stream(
        self, prompts: list[str], config: GenerationConfig, progress: bool = True
    ) -> Iterator[tuple[int, int, Completion]]:
        """Yield `(prompt index, sample, completion)` as each sequence ends; every slot stays busy to the end."""
        from tqdm.auto import tqdm

        if config.max_new_tokens < 1 or config.n < 1 or config.batch_size < 1:
            raise UserError(f"generation: max_new_tokens, n and batch_size must be >= 1, got {config}")
        greedy = config.temperature == 0.0
        copies = 1 if greedy else config.n  # greedy samples are identical: compute once, copy n times
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        if any(not ids for ids in encoded):
            raise UserError(f"generation: prompt {next(i for i, ids in enumerate(encoded) if not ids)} is empty")
        jobs = [
            Job((i, k), ids, None if greedy else _rng(config.seed, prompts[i], k))
            for i, ids in enumerate(encoded)
            for k in range(copies)
        ]
        jobs.sort(key=lambda job: len(job.prompt), reverse=True)  # longest first: a joining prompt always fits

        def is_done(ids: list[int]) -> bool:
            return ids[-1] in self.eos or halts(ids, self.tokenizer, config)

        with torch.inference_mode(), tqdm(total=len(jobs), desc="generate", unit="seq", disable=not progress) as bar:
            insert = (lambda ids: calculator_tokens(ids, self.tokenizer)) if config.calculator else None
            if continuous.supported(self.model):
                finished = continuous.run(self.model, jobs, config.batch_size, config.max_new_tokens,
                                          _picker(config), is_done, config.exact_attention, insert)
            elif config.calculator:
                raise UserError("eval.calculator needs mathtune's continuous batching, which this model does not "
                                "support (a Llama-style decoder does); set eval.calculator to false")
            else:
                finished = self._generate_padded(jobs, config)
            for job, ids in finished:
                i, k = job.key
                done = finish(ids, self.tokenizer, self.eos, config.stop, config.max_new_tokens, config.stop_regex,
                              config.stop_on_loop)
                bar.update(1)
                for sample in range(config.n) if greedy else [k]:
                    yield i, sample, replace(done)

    def _generate_padded(self, jobs: list[Job], config: GenerationConfig) -> Iterator[tuple[Job, list[int]]]:
        """Fallback: plain left-padded `model.generate` batches (rows that end early idle until the batch ends)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            for start in range(0, len(jobs), config.batch_size):
                batch = jobs[start : start + config.batch_size]
                yield from zip(batch, self._generate_batch([job.prompt for job in batch], config))

    def _generate_batch(self, batch: list[list[int]], config: GenerationConfig) -> list[list[int]]:
        """One left-padded `model.generate` call; returns the new ids of each row (pads after a stop included)."""
        from transformers import GenerationConfig as HFGenerationConfig

        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in batch])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        device = next(self.model.parameters()).device
        greedy = config.temperature == 0.0
        # every knob set explicitly: unset ones would be filled from the checkpoint's generation_config (top_k=50...)
        hf_config = HFGenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else config.temperature,
            top_p=None if greedy else config.top_p,
            top_k=None if greedy else 0,
            repetition_penalty=1.0,
            num_beams=1,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos),
        )
        stopping = [_StopStrings(self.tokenizer, config, width)] \
            if config.stop or config.stop_regex or config.stop_on_loop else None
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            generation_config=hf_config,
            stopping_criteria=stopping,
        )
        return out[:, width:].tolist()


class VLLMGenerator:
    """vLLM backend (optional extra `mathtune[vllm]`, CUDA only); `model` must be a local folder or hub id."""

    def __init__(self, model: Any, tokenizer: Any):
        try:
            import vllm
        except ImportError as err:
            raise UserError("backend 'vllm' needs the vllm package: pip install 'mathtune[vllm]'") from err
        if not torch.cuda.is_available():
            raise UserError("backend 'vllm' needs a CUDA GPU; use backend 'hf' on this machine")
        if hasattr(model, "peft_config"):
            raise UserError("backend 'vllm' loads weights from disk: merge the LoRA adapter and save the model first")
        path = model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "")
        if not path:
            raise UserError("backend 'vllm' needs a model saved to disk (a folder or hub id), not one built in memory")
        self.vllm = vllm
        self.llm = vllm.LLM(model=str(path), tokenizer=getattr(tokenizer, "name_or_path", None) or str(path))
        self.eos = eos_token_ids(SimpleNamespace(generation_config=_saved_generation_config(str(path))),
                                 self.llm.get_tokenizer())

    def generate(
        self, prompts: list[str], config: GenerationConfig, progress: bool = True
    ) -> list[list[Completion]]:
        params = self.vllm.SamplingParams(
            n=config.n,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
            max_tokens=config.max_new_tokens,
            stop=config.stop or None,
        )
        token_prompts = [{"prompt_token_ids": self.llm.get_tokenizer()(p, add_special_tokens=False)["input_ids"]}
                         for p in prompts]
        outputs = self.llm.generate(token_prompts, params, use_tqdm=progress)
        tokenizer, eos = self.llm.get_tokenizer(), self.eos
        # stop regexes and the loop stop cut afterwards, by the rule the HF path applies while it decodes
        return [[finish(cut_where_halted(list(o.token_ids), tokenizer, eos, config), tokenizer, eos, config.stop,
                        config.max_new_tokens, config.stop_regex, config.stop_on_loop) for o in out.outputs]
                for out in outputs]

    def stream(
        self, prompts: list[str], config: GenerationConfig, progress: bool = True
    ) -> Iterator[tuple[int, int, Completion]]:
        """vLLM schedules the whole queue itself; its results are yielded when the call returns."""
        if config.calculator:  # vLLM samples whole sequences: nothing can be written into one as it grows
            raise UserError("backend 'vllm': eval.calculator is not supported; use backend 'hf'")
        for i, completions in enumerate(self.generate(prompts, config, progress)):
            for k, completion in enumerate(completions):
                yield i, k, completion


def _saved_generation_config(path: str) -> Any:
    """The checkpoint's generation_config (its EOS ids), or None where it has none."""
    from transformers import GenerationConfig as HFGenerationConfig

    try:
        return HFGenerationConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None


def resolve_precision(precision: str, device: Any = "cpu") -> tuple[str, str]:
    """`eval.precision` as the precision it runs in (auto: bf16 where `device` multiplies bf16 fast, else fp32), why."""
    if precision != "auto":
        return precision, f"eval.precision: {precision}"
    from mathtune.precision import decide_precision

    dtype, why = decide_precision("auto", device)
    return ("bf16" if dtype == torch.bfloat16 else "fp32"), why


def for_precision(model: Any, precision: str) -> Any:
    """The model as `eval.precision` asks (changed in place): fp32 as it is, bf16 cast, int8 linear layers."""
    if precision == "auto":
        precision, _ = resolve_precision(precision, next(model.parameters()).device)
    if precision == "fp32":
        return model
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision != "int8":
        raise UserError(f"eval.precision: {precision!r} is not one of fp32, bf16, int8, auto")
    if next(model.parameters()).device.type != "cpu":
        raise UserError("eval.precision int8 is for CPUs (torch dynamic quantisation); use bf16 on a GPU")
    # torch's own dynamic quantisation: int8 weights per tensor, activations quantised per call. Deprecated in favour
    # of torchao, which is not a dependency; measured against fp32 and bf16 in benchmarks/eval_speed.py (--int8)
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def make_generator(backend: str, model: Any, tokenizer: Any) -> Generator:
    """Return the generator of `backend`: "hf" (any transformers or peft model) or "vllm" (GPU, optional extra)."""
    if backend == "hf":
        return HFGenerator(model, tokenizer)
    if backend == "vllm":
        return VLLMGenerator(model, tokenizer)
    raise UserError(f"unknown generation backend {backend!r}; known: hf, vllm")
