"""mathtune's recurrent-depth causal LM: prelude layers, a core block iterated r times with input injection, coda.

    e = prelude(embed(ids));  s_0 = e ("embed" start; or zeros / random);  s_i = core(adapter([s_{i-1}, e]))
    logits = lm_head(norm(coda(s_r)))

The layers are transformers' Llama decoder layers, so attention dispatches through the AttentionInterface (sdpa,
eager, mathtune's continuous-batching rows) and a Llama checkpoint maps onto it tensor for tensor
(mathtune/recurrent/init_from.py). The adapter is huginn's input injection: a linear map of the concatenated latent
state and prelude output.

Depth: in training (no KV cache), r is drawn per forward from huginn's log-normal Poisson around
`config.mean_recurrence`, and only the last `config.backprop_depth` iterations are differentiated (the earlier ones
run under no_grad, so the core's weights get gradient from those iterations alone). At evaluation, and whenever a KV
cache is in use, r is `config.num_steps` (or the `num_steps=` of the call), so every iteration of every token has its
own cache slot and cached generation equals generation without a cache.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm, LlamaRotaryEmbedding

from mathtune.recurrent.configuration import MODEL_TYPE, RecurrentConfig

LOGNORMAL_SIGMA = 0.5  # huginn's spread of the per-step mean depth
_NOT_FOR_LAYERS = ("return_dict", "output_attentions", "output_hidden_states")
# transformers 5.24 renamed the KV-cache argument `past_key_values` to `cache` (models, layers, masks, and `generate`,
# which now calls forward with `cache=`). Take either name here and hand the cache on under the name the installed
# layers / mask function take, so a `cache=` from generate is never left in **kwargs (where it used to reach the core
# layers un-remapped and override the per-iteration _SlotView, while forward built a fresh cache of its own).
_LAYER_CACHE_KW = "cache" if "cache" in inspect.signature(LlamaDecoderLayer.forward).parameters else "past_key_values"
_MASK_CACHE_KW = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def _one_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("give the KV cache as one of `cache` or `past_key_values`, not both")
    return cache if cache is not None else past_key_values


@dataclass
class RecurrentModelOutput(BaseModelOutputWithPast):
    """The backbone's output (TRL's fused LM-head loss reads `last_hidden_state` from it) plus the depth diagnostics."""

    convergence: torch.FloatTensor | None = None
    num_steps: int | None = None


@dataclass
class RecurrentCausalLMOutput(CausalLMOutputWithPast):
    """CausalLMOutputWithPast plus the depth used and, per token, how much the last iteration moved the state."""

    convergence: torch.FloatTensor | None = None  # [batch, seq]: |s_r - s_{r-1}| / |s_r| (s_0 when r = 1)
    num_steps: int | None = None


def sample_depth(mean_recurrence: int, backprop_depth: int) -> tuple[int, int]:
    """Huginn's training depth: r = 1 + Poisson(LogNormal) with mean ~ mean_recurrence; returns (no-grad, grad) steps."""
    total = max(mean_recurrence, 1)
    mu = math.log(total) - LOGNORMAL_SIGMA**2 / 2
    rate = torch.zeros(1).log_normal_(mean=mu, std=LOGNORMAL_SIGMA)
    r = int(torch.poisson(rate).item()) + 1
    return max(r - backprop_depth, 0), min(backprop_depth, r)


class InjectionAdapter(nn.Linear):
    """Maps [latent state, prelude output] (2h) back to h; its own class so that init can set the identity mix."""


class _SlotView:
    """The KV cache as one core layer sees it at one iteration: `update` writes that (iteration, layer) slot."""

    def __init__(self, cache: Cache, config: RecurrentConfig, step: int):
        self.cache, self.config, self.step = cache, config, step

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        slot = self.config.cache_slot(self.step, layer_idx)
        return self.cache.update(key_states, value_states, slot, *args, **kwargs)


def _ensure_slots(cache: Cache, slots: int) -> None:
    """`generate` builds its cache with one layer per config layer; the iterations need more slots than that."""
    if getattr(cache, "layer_class_to_replicate", None) is None and hasattr(cache, "layers"):
        while len(cache.layers) < slots:
            cache.layers.append(DynamicLayer())


class RecurrentPreTrainedModel(PreTrainedModel):
    config_class = RecurrentConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["LlamaDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True
    _supports_flex_attn = False
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, InjectionAdapter):  # [mix * I | (1 - mix) * I]: with s_0 = e, iteration 1 sees e
            h = module.out_features
            eye = torch.eye(h, dtype=module.weight.dtype, device=module.weight.device)
            mix = self.config.injection_mix
            init.copy_(module.weight, torch.cat([mix * eye, (1 - mix) * eye], dim=1))


class RecurrentModel(RecurrentPreTrainedModel):
    """Embedding, prelude, adapter + core, coda and final norm; returns the normed hidden states."""

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.prelude = nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(config.n_prelude))
        self.adapter = InjectionAdapter(2 * config.hidden_size, config.hidden_size, bias=False)
        # core layers index their own position in the block; _SlotView maps it to the iteration's cache slot
        self.core = nn.ModuleList(LlamaDecoderLayer(config, j) for j in range(config.n_core))
        self.coda = nn.ModuleList(LlamaDecoderLayer(config, config.n_prelude + k) for k in range(config.n_coda))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def iterations(self, num_steps: Any, cached: bool) -> tuple[int, int]:
        """(iterations under no_grad, iterations with gradient) for this forward."""
        if isinstance(num_steps, (tuple, list)):
            return int(num_steps[0]), int(num_steps[1])
        truncate = self.training and torch.is_grad_enabled()
        if num_steps is None and truncate and not cached:
            return sample_depth(self.config.mean_recurrence, self.config.backprop_depth)
        r = int(num_steps if num_steps is not None else self.config.num_steps)
        if r < 1:
            raise ValueError(f"num_steps must be >= 1, got {r}")
        k = min(r, self.config.backprop_depth) if truncate else r
        return r - k, k

    def initial_state(self, e: torch.Tensor) -> torch.Tensor:
        """s_0 from the prelude output, per `config.state_init`."""
        if self.config.state_init == "embed":
            return e
        if self.config.state_init == "zero":
            return torch.zeros_like(e)
        std = math.sqrt(2 / (5 * self.config.hidden_size))
        return nn.init.trunc_normal_(torch.empty_like(e), std=std, a=-3 * std, b=3 * std)

    def iterate(self, state: torch.Tensor, e: torch.Tensor, cache: Cache | None, step: int, kw: dict) -> torch.Tensor:
        """One pass of the core block: inject e into the state, then the core layers."""
        x = self.adapter(torch.cat([state, e], dim=-1))
        view = _SlotView(cache, self.config, step) if cache is not None else None
        for layer in self.core:
            x = layer(x, **{_LAYER_CACHE_KW: view}, **kw)
        return x

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        num_steps: int | tuple[int, int] | None = None,
        cache: Cache | None = None,
        **kwargs: Any,
    ) -> RecurrentModelOutput:
        """Normed hidden states, the cache, per-token convergence and the number of iterations run."""
        past_key_values = _one_cache(cache, past_key_values)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        no_grad_steps, grad_steps = self.iterations(num_steps, cached=past_key_values is not None)
        total = no_grad_steps + grad_steps
        if past_key_values is not None:
            _ensure_slots(past_key_values, self.config.cache_slot(total, 0))
            past = past_key_values.get_seq_length()
        else:
            past = 0
        if position_ids is None:
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past).unsqueeze(0)
        mask = create_causal_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            position_ids=position_ids, **{_MASK_CACHE_KW: past_key_values},
        )
        kw = {k: v for k, v in kwargs.items() if k not in _NOT_FOR_LAYERS}
        kw.update(attention_mask=mask, position_ids=position_ids, use_cache=use_cache,
                  position_embeddings=self.rotary_emb(inputs_embeds, position_ids=position_ids))
        h = inputs_embeds
        for layer in self.prelude:
            h = layer(h, **{_LAYER_CACHE_KW: past_key_values}, **kw)
        e = h
        state = prev = self.initial_state(e)
        with torch.no_grad():  # truncated backprop: these iterations give the weights no gradient
            for step in range(no_grad_steps):
                prev, state = state, self.iterate(state, e, past_key_values, step, kw)
        for step in range(no_grad_steps, total):
            prev, state = state, self.iterate(state, e, past_key_values, step, kw)
        with torch.no_grad():
            change = (state - prev).float().norm(dim=-1) / state.float().norm(dim=-1).clamp_min(1e-12)
        h = state
        for layer in self.coda:
            h = layer(h, **{_LAYER_CACHE_KW: past_key_values}, **kw)
        return RecurrentModelOutput(
            last_hidden_state=self.norm(h), past_key_values=past_key_values, convergence=change, num_steps=total
        )


class RecurrentForCausalLM(RecurrentPreTrainedModel, GenerationMixin):
    """The causal LM: RecurrentModel + LM head (tied to the embedding when the config says so)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.model = RecurrentModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_steps: int | tuple[int, int] | None = None,
        cache: Cache | None = None,
        **kwargs: Any,
    ) -> RecurrentCausalLMOutput:
        """Logits (and the shifted LM loss with `labels`); `num_steps` overrides the iteration count of this call
        (an int r, or (no-grad, grad) iterations)."""
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=_one_cache(cache, past_key_values), inputs_embeds=inputs_embeds, use_cache=use_cache,
            num_steps=num_steps, **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(out.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss_kw = {k: v for k, v in kwargs.items() if k == "num_items_in_batch"}
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **loss_kw)
        return RecurrentCausalLMOutput(
            loss=loss, logits=logits, past_key_values=out.past_key_values, convergence=out.convergence,
            num_steps=out.num_steps,
        )


# Registered on import: `AutoModelForCausalLM.from_pretrained(folder)` then loads a saved model without remote code.
AutoConfig.register(MODEL_TYPE, RecurrentConfig, exist_ok=True)
AutoModelForCausalLM.register(RecurrentConfig, RecurrentForCausalLM, exist_ok=True)
