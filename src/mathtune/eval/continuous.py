"""Continuous batching for transformers models: a row leaves the batch the step it ends, a queued prompt takes its slot.

The engine behind `HFGenerator` (mathtune/eval/generate.py). Every running row keeps its KV in one preallocated slab
`[slots, kv_heads, capacity, head_dim]` per layer, right-aligned: all rows write the same column each step and a row's
prompt is written just left of that column when it joins. Each prompt is prefilled alone, as unbatched `generate`
does. In a decode step the linear layers run on all rows at once; attention runs row by row on each row's own
columns (the `mathtune_rows` attention below), the very SDPA call unbatched decoding makes, so no padding is attended
and no KV is concatenated or repadded per step. Only the batched linears differ from unbatched decoding (a GEMM sums
in another order than a single-row GEMV, ~1e-6), which can flip a rare near-tie between two greedy tokens.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import Cache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

SLACK = 64  # spare columns: the slab is slid left (dropping columns no row uses) once per SLACK steps at most


@dataclass
class Job:
    """One sequence to generate: `key` is handed back with its result; `rng` is set when sampling."""

    key: Any
    prompt: list[int]
    rng: torch.Generator | None = None


ROW_ATTENTION = "mathtune_rows"


def _row_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
                   mathtune_row_starts: list[int] | None = None, mathtune_slab_mask: torch.Tensor | None = None,
                   **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Decode attention over the slab, or plain causal SDPA (a lone prompt's prefill).

    Decode: one SDPA call per layer for every row, with a boolean mask that hides the columns left of each row's
    start (`mathtune_slab_mask`, built once per step). The grouped query heads are folded into the query length
    (as transformers' `pack_gqa` does), so the KV heads are never repeated. Masked columns add exact zeros, but the
    kernel's blocking over the longer row sums in another order than a row decoding alone: ~1e-7 differences.
    `mathtune_row_starts` alone (no mask) keeps the exact per-row path: one SDPA call per row on its own columns,
    the very call unbatched decoding makes (the benchmark's exactness reference for the batched linears).
    """
    q_len, kv_len = query.shape[2], key.shape[2]
    if 1 < q_len < kv_len:  # a prompt's own tokens after a cached shared prefix: causal, aligned bottom-right
        mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
        return sdpa_attention_forward(module, query, key, value, mask[None, None], **kwargs)
    if q_len != 1 or key.shape[-1] != value.shape[-1] or (
        mathtune_row_starts is None and mathtune_slab_mask is None
    ):
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if mathtune_slab_mask is not None:
        rows, heads, _, dim = query.shape
        packed = query.view(rows, heads // groups, groups, dim)  # head h reads KV head h // groups
        out = torch.nn.functional.scaled_dot_product_attention(
            packed, key, value, attn_mask=mathtune_slab_mask, dropout_p=0.0, scale=kwargs.get("scaling")
        )
        return out.reshape(rows, heads, 1, dim).transpose(1, 2), None
    rows_out = [
        torch.nn.functional.scaled_dot_product_attention(
            query[i : i + 1], key[i : i + 1, :, s:], value[i : i + 1, :, s:],
            dropout_p=0.0, scale=kwargs.get("scaling"), enable_gqa=groups > 1,
        )
        for i, s in enumerate(mathtune_row_starts)
    ]
    return torch.cat(rows_out).transpose(1, 2).contiguous(), None


AttentionInterface.register(ROW_ATTENTION, _row_attention)


def _base(model: Any) -> Any:
    """The transformers model itself (inside a peft wrapper, if any)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supported(model: Any) -> bool:
    """Whether `run` can drive `model`: full-attention layers only (no sliding window, no linear attention), and
    attention dispatched through transformers' AttentionInterface, so that the per-row attention is the one used."""
    base = _base(model)
    config = base.config.get_text_config(decoder=True)
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    dispatches = getattr(base, "_can_set_attn_implementation", lambda: False)()
    # Remote-code models (huginn-0125...) keep their own cache and attention code, which transformers' source
    # heuristic behind _can_set_attn_implementation cannot see: they take the model.generate fallback.
    remote = bool(getattr(base.config, "auto_map", None))
    return kinds == {"full_attention"} and not getattr(config, "sliding_window", None) and dispatches and not remote


@contextmanager
def _attention(model: Any, name: str) -> Iterator[None]:
    """Switch the model (or the model inside a peft wrapper) to attention `name` and back."""
    base = _base(model)
    old = base.config._attn_implementation
    base.set_attn_implementation(name)
    if base.config._attn_implementation != name:  # refused with a warning: the slab's padding would be attended
        base.set_attn_implementation(old)
        raise RuntimeError(f"{type(base).__name__} did not switch to attention {name!r}; check supported() first")
    try:
        yield
    finally:
        base.set_attn_implementation(old)


@contextmanager
def _packed_linears(model: Any, batch_hint: int) -> Iterator[None]:
    """On CPU, decode steps run every plain fp32 `nn.Linear` on a weight prepacked for oneDNN.

    At a handful of rows a GEMM spends much of its time repacking the weight; prepacked, the layers of
    SmolLM2-135M take ~15% less and the LM head ~35% less (benchmarks/results/eval_speed.md). Prefill (more than
    one position) keeps the stock path, so its KV is bit-identical to unbatched `generate`. The packed copy costs
    one more copy of the weights in memory while generating.
    """
    linears = [
        m for m in model.modules()
        if type(m) is torch.nn.Linear and m.weight.device.type == "cpu" and m.weight.dtype == torch.float32
        and "forward" not in m.__dict__  # already wrapped (accelerate hooks...): leave it alone
    ]
    if not torch.backends.mkldnn.is_available():
        linears = []
    for m in linears:
        packed = torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), batch_hint)

        def forward(x: torch.Tensor, m: torch.nn.Linear = m, packed: torch.Tensor = packed) -> torch.Tensor:
            if x.dim() == 3 and x.shape[1] == 1:  # a decode step: one position per row
                return torch.ops.mkldnn._linear_pointwise(x, packed, m.bias, "none", [], "")
            return torch.nn.functional.linear(x, m.weight, m.bias)

        m.forward = forward
    try:
        yield
    finally:
        for m in linears:
            del m.forward


@dataclass
class _Row:
    job: Job
    new: list[int] = field(default_factory=list)  # generated ids so far; the last one is fed next step
    inserted: list[int] = field(default_factory=list)  # ids a tool writes next, one a step, instead of picked ones


class _SlabLayer(DynamicLayer):
    """One layer's KV for all slots; `update` writes the new column(s) in place and returns the used columns."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values = keys, values
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        end = self.length + key_states.shape[-2]
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length


class _Slab:
    """The KV slab of every layer plus each slot's first used column."""

    def __init__(self, prefill: DynamicCache, slots: int, capacity: int):
        def buffer(like: torch.Tensor) -> torch.Tensor:
            return like.new_zeros(slots, like.shape[1], capacity, like.shape[3])

        self.cache = Cache(layers=[_SlabLayer(buffer(x.keys), buffer(x.values)) for x in prefill.layers])
        self.starts = [0] * slots
        self.capacity = capacity

    @property
    def length(self) -> int:
        return self.cache.layers[0].length

    def _set_length(self, length: int) -> None:
        for layer in self.cache.layers:
            layer.length = length

    def write(self, slot: int, prefill: DynamicCache) -> None:
        """Put a freshly prefilled prompt into `slot`, ending at the current column (sliding right if it is short)."""
        n = prefill.layers[0].keys.shape[2]
        if n > self.length:
            self.shift(n - self.length)
        start = self.length - n
        for layer, new in zip(self.cache.layers, prefill.layers):
            layer.keys[slot, :, start : self.length] = new.keys[0]
            layer.values[slot, :, start : self.length] = new.values[0]
        self.starts[slot] = start

    def shift(self, by: int) -> None:
        """Move every used column `by` to the right (negative: to the left, dropping columns no row uses)."""
        old, new = self.length, self.length + by
        src, dst = (slice(0, old), slice(by, new)) if by > 0 else (slice(-by, old), slice(0, new))
        for layer in self.cache.layers:
            for buf in (layer.keys, layer.values):
                buf[:, :, dst] = buf[:, :, src].clone()
        self.starts = [max(0, s + by) for s in self.starts]
        self._set_length(new)

    def make_room(self, live: list[int]) -> None:
        """Before a step: when the next column would not fit, slide left past the columns no live slot uses."""
        if self.length < self.capacity:
            return
        first = min(self.starts[i] for i in live)
        if first == 0:
            raise RuntimeError("KV slab full: a row outgrew prompt + max_new_tokens")  # cannot happen by sizing
        self.shift(-first)

    def keep(self, slots: list[int]) -> None:
        """Drop every slot not in `slots` (rows finished and nothing is queued): later steps compute fewer rows."""
        index = torch.tensor(slots, device=self.cache.layers[0].keys.device)
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[index], layer.values[index]
        self.starts = [self.starts[i] for i in slots]


def run(
    model: Any,
    jobs: list[Job],
    slots: int,
    max_new_tokens: int,
    pick: Callable[[torch.Tensor, list[Job]], list[int]],
    is_done: Callable[[list[int]], bool],
    exact_attention: bool = False,
    insert: Callable[[list[int]], list[int]] | None = None,
) -> Iterator[tuple[Job, list[int]]]:
    """Generate every job, yielding `(job, new_ids)` as each row ends (at most `max_new_tokens` ids).

    `pick(logits [rows, vocab], jobs)` chooses next ids, `is_done(new_ids)` ends a row early. Jobs are admitted in
    the given order (give them longest prompt first: a prompt never has to wait for room), so every slot stays busy
    until the queue is empty. `exact_attention` runs attention row by row (slower; see `_row_attention`).
    `insert(new_ids)` names ids a tool writes next (eval/calculator.py); they are fed one a step, in place of the
    picked ones, and count as generated.
    """
    if not jobs:
        return
    capacity = max(len(j.prompt) for j in jobs) + max_new_tokens + SLACK
    with _attention(model, ROW_ATTENTION), _packed_linears(model, slots):
        prefix = _shared_prefix(model, jobs)
        yield from _run(model, deque(jobs), slots, capacity, max_new_tokens, pick, is_done, exact_attention, prefix,
                        insert)


MIN_SHARED_PREFIX = 64  # tokens: below this (a chat template's system turn) prefill alone stays bit-exact


def _shared_prefix(model: Any, jobs: list[Job]) -> DynamicCache | None:
    """The KV of the token prefix every prompt shares (few-shot exemplars), computed once.

    With 8 worked examples a GSM8K prompt is ~900 tokens, of which the question is ~70: prefilling the shared part
    once turns 1,319 prefills of 900 tokens into one of 830 and 1,319 of ~70. Each prompt's own tokens then run on
    a copy of that cache, which sums in another order than one long prefill (~1e-6), so it is used only when the
    shared part is long (MIN_SHARED_PREFIX) and at least one token of each prompt is left to run.
    """
    if len(jobs) < 2:
        return None
    first, n = jobs[0].prompt, min(len(j.prompt) for j in jobs) - 1
    for job in jobs[1:]:
        n = next((i for i, (a, b) in enumerate(zip(first[:n], job.prompt)) if a != b), n)
        if n < MIN_SHARED_PREFIX:
            return None
    cache = DynamicCache()
    model(input_ids=torch.tensor([first[:n]], device=model.device), past_key_values=cache, use_cache=True,
          logits_to_keep=1, mathtune_row_starts=None)
    return cache


def _run(model: Any, queue: deque, slots: int, capacity: int, max_new_tokens: int, pick: Callable,
         is_done: Callable, exact_attention: bool, prefix: DynamicCache | None = None,
         insert: Callable | None = None) -> Iterator[tuple[Job, list[int]]]:
    slab: _Slab | None = None
    rows: list[_Row | None] = []
    while queue or any(rows):
        while queue and (slab is None or None in rows or len(rows) < slots):
            job = queue.popleft()
            cache, first = _prefill(model, job, pick, prefix)
            if slab is None:
                slab = _Slab(cache, slots, capacity)
            row = _Row(job, [first])
            if len(row.new) >= max_new_tokens or is_done(row.new):
                yield job, row.new
                continue
            slot = rows.index(None) if None in rows else len(rows)
            rows[slot : slot + 1] = [row]
            slab.write(slot, cache)
        if slab is None:
            break
        if None in rows or len(rows) < len(slab.starts):  # nothing queued: stop computing the finished rows
            live = [i for i, r in enumerate(rows) if r is not None]
            slab.keep(live)
            rows = [rows[i] for i in live]
        if not rows:
            break
        _step(model, slab, rows, pick, exact_attention, insert)
        for i, row in enumerate(rows):
            if row is not None and (len(row.new) >= max_new_tokens or is_done(row.new)):
                rows[i] = None
                yield row.job, row.new


def _prefill(model: Any, job: Job, pick: Callable, prefix: DynamicCache | None = None) -> tuple[DynamicCache, int]:
    """Run one prompt alone, exactly as unbatched `generate` does (or its tokens after a shared prefix's cached KV),
    and pick its first new token."""
    cache = DynamicCache()
    ids = torch.tensor([job.prompt], device=model.device)
    if prefix is not None:
        for i, layer in enumerate(prefix.layers):
            cache.update(layer.keys.clone(), layer.values.clone(), i)
        ids = ids[:, prefix.get_seq_length():]
    out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1, mathtune_row_starts=None)
    return cache, pick(out.logits[:, -1, :], [job])[0]


def _step(model: Any, slab: _Slab, rows: list[_Row], pick: Callable, exact_attention: bool = False,
          insert: Callable | None = None) -> None:
    """One decode step of every row: feed each row's last id at its own position, append the picked id."""
    slab.make_room(list(range(len(rows))))
    device = model.device
    ids = torch.tensor([[r.new[-1]] for r in rows], device=device)
    positions = torch.tensor([[len(r.job.prompt) + len(r.new) - 1] for r in rows], device=device)
    extra: dict[str, Any] = {"mathtune_row_starts": slab.starts}
    if not exact_attention:  # columns start.. of each row, plus the one this step writes
        columns = torch.arange(slab.length + 1, device=device)
        starts = torch.tensor(slab.starts, device=device)
        extra = {"mathtune_slab_mask": (columns[None, :] >= starts[:, None])[:, None, None, :]}
    out = model(input_ids=ids, position_ids=positions, past_key_values=slab.cache, use_cache=True, **extra)
    for row, tok in zip(rows, pick(out.logits[:, -1, :], [r.job for r in rows])):
        row.new.append(row.inserted.pop(0) if row.inserted else tok)
        if insert is not None and not row.inserted:
            row.inserted = insert(row.new)
