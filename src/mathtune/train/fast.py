"""mathtune's training-speed levers on top of TRL's SFTTrainer, chosen by the recipe's `speed:` block.

Measured on a 2-core CPU by `mathtune bench train` (benchmarks/results/train_speed.md). What they remove from a plain
TRL step with LoRA on the default model (GSM8K chain-of-thought rows, batch 8):
- padding_free: the batch is one row of its examples back to back, position ids restarting at 0 per example, so no
  compute goes to padding (about 30% of a padded GSM8K batch). The same examples make each step as without it, so
  the loss is the same up to float rounding.
- varlen_attention: with padding_free, each example attends only to itself through its own causal SDPA call
  (mathtune.train.varlen) instead of a dense block-diagonal mask over the whole row.
- compact_lm_head: the 49k-vocabulary LM head and the loss run only on positions that have a label (the completion),
  once. TRL's fused head on CPU projects every position, prompt and padding included, recomputes the projection in
  the backward pass and also computes an entropy metric over the vocabulary.
- fast_dropout: LoRA dropout masks drawn four elements per random word (mathtune.train.dropout): the same Bernoulli
  mask distribution, a different random stream.
- fused_lora: PEFT's LoRA linear forward with one bf16 cast per layer input, the dropout as one masked fill and the
  LoRA product added inside the matmul (mathtune.train.fused_lora): the same function, different rounding.
- frozen_bf16: under CPU bf16 autocast, the frozen base weights are stored in bf16 once instead of being cast at every
  forward (mathtune.train.frozen_bf16): the same bf16 operands, so the same loss and gradients.
TRL's own levers stay in `trainer:` (gradient_checkpointing, bf16, torch_compile, use_liger_kernel, ...).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mathtune.schema import Strict


class SpeedConfig(Strict):
    """The recipe's `speed:` block: mathtune's training-speed levers (TRL's own ones go in `trainer:`)."""

    padding_free: bool = True  # one unpadded row per batch; position ids restart per example
    varlen_attention: bool = True  # with padding_free: per-example causal attention, no dense mask
    # LM head + loss only where a label is, computed once. None = on CPU only: it materialises the logits of every
    # labelled token (8k tokens x 152k vocab = 16 GiB in fp32 for a 4096-token batch of 2), where TRL's chunked head
    # on GPU keeps a fraction of that (see the dry-run memory plan).
    compact_lm_head: bool | None = None
    # LoRA dropout masks drawn 4 per random word (mathtune.train.dropout); None = on CPU only, where torch's
    # per-element draw costs ~20% of a step
    fast_dropout: bool | None = None
    # frozen base weights stored in bf16 when the step runs under CPU bf16 autocast (mathtune.train.frozen_bf16);
    # None = on whenever it applies (no effect in fp32 or on CUDA)
    frozen_bf16: bool | None = None
    # PEFT's LoRA linear forward with one shared input cast, a masked-fill dropout and the add inside the matmul
    # (mathtune.train.fused_lora); None = on CPU only (on CUDA the casts and elementwise ops are cheap)
    fused_lora: bool | None = None
    threads: int | None = Field(None, gt=0)  # torch intra-op threads; None keeps torch's default (one per core)
    # compute dtype on CPU: auto = bf16 autocast where the processor multiplies bf16 fast, else fp32
    # (mathtune.precision.decide_precision); on CUDA auto keeps TRL's choice. `trainer.bf16` in a recipe wins.
    precision: Literal["auto", "fp32", "bf16"] = "auto"


def apply_threads(speed: SpeedConfig) -> None:
    """Set torch's thread count when the recipe names one."""
    if speed.threads:
        import torch

        torch.set_num_threads(speed.threads)


def compact_head_on(speed: SpeedConfig, cuda: bool | None = None) -> bool:
    """Whether the compact LM head is used: the recipe's choice, else on without CUDA and off with it."""
    return _cpu_default(speed.compact_lm_head, cuda)


def fast_dropout_on(speed: SpeedConfig, cuda: bool | None = None) -> bool:
    """Whether LoRA dropout uses FastDropout: the recipe's choice, else on without CUDA and off with it."""
    return _cpu_default(speed.fast_dropout, cuda)


def fused_lora_on(speed: SpeedConfig, cuda: bool | None = None) -> bool:
    """Whether PEFT's LoRA linears get the fused forward: the recipe's choice, else on without CUDA and off with it."""
    return _cpu_default(speed.fused_lora, cuda)


def _cpu_default(choice: bool | None, cuda: bool | None) -> bool:
    if choice is not None:
        return choice
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return not cuda


def frozen_bf16_on(speed: SpeedConfig, bf16: bool, cuda: bool | None = None) -> bool:
    """Whether frozen base weights are stored in bf16: only under bf16 autocast on CPU, unless the recipe says no."""
    return bf16 and speed.frozen_bf16 is not False and _cpu_default(None, cuda)


def _without_peft(model):
    """The transformers model under a PEFT wrapper (the model itself when there is none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def uses_fast_trainer(speed: SpeedConfig) -> bool:
    """Whether any lever needs FastSFTTrainer (otherwise plain SFTTrainer is used)."""
    return speed.padding_free or compact_head_on(speed) or fast_dropout_on(speed) or fused_lora_on(speed)


def make_fast_trainer_class():
    """FastSFTTrainer, built on first use so that importing this module does not import TRL."""
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    class FastSFTTrainer(SFTTrainer):
        """SFTTrainer with mathtune's speed levers; everything else (data prep, truncation, saving) is TRL's."""

        def __init__(self, *args, speed: SpeedConfig, **kwargs):
            super().__init__(*args, **kwargs)
            self.speed = speed
            if fast_dropout_on(speed):
                from mathtune.train.dropout import use_fast_lora_dropout

                use_fast_lora_dropout(self.model)
            if fused_lora_on(speed):
                from mathtune.train.fused_lora import use_fused_lora

                use_fused_lora(self.model)
            self.head_bf16 = None  # the compact head's bf16 weight when the head is frozen (frozen_bf16)
            if frozen_bf16_on(speed, bool(self.args.bf16)):
                from mathtune.train.frozen_bf16 import head_weight_bf16, store_frozen_linears_bf16

                store_frozen_linears_bf16(self.model)
                self.head_bf16 = head_weight_bf16(_without_peft(self.model).lm_head) if compact_head_on(speed) else None
            if speed.padding_free:
                # TRL refuses padding_free together with max_length unless it packs; the collator is swapped after
                # TRL has tokenized and truncated the data to max_length, which keeps both.
                self.data_collator = DataCollatorForLanguageModeling(
                    pad_token_id=self._tokenizer.pad_token_id, padding_free=True,
                    pad_to_multiple_of=self.args.pad_to_multiple_of,
                )
                self.padding_free = True
                if speed.varlen_attention:
                    from mathtune.train.varlen import register_varlen_attention

                    _without_peft(self.model).set_attn_implementation(register_varlen_attention())

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """Mean next-token loss over labelled positions, with the LM head applied to those positions only."""
            if not compact_head_on(self.speed) or return_outputs or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            base = _without_peft(self.accelerator.unwrap_model(model))
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            targets = labels[:, 1:]
            mask = targets != -100
            # accelerate applies bf16 autocast by wrapping the model's forward, which this path bypasses: enter it
            # here (a no-op in fp32). The residual stream stays fp32 (Llama adds bf16 block outputs to it); the head's
            # logits come out of a bf16 matmul (fp32 accumulation) and the log-softmax and loss run in fp32.
            with self.accelerator.autocast():
                hidden = base.model(**inputs, use_cache=False).last_hidden_state
                picked = hidden[:, :-1][mask]
                logits = base.lm_head(picked) if self.head_bf16 is None else F.linear(picked, self.head_bf16)
            loss_sum = F.cross_entropy(logits.float(), targets[mask], reduction="sum")
            # TRL's normaliser: tokens of the whole (accumulated) batch when the Trainer passes it, else this batch's
            count = mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = loss_sum / torch.as_tensor(count).clamp(min=1)
            self._log_step_metrics(inputs, logits, targets[mask])
            return loss

        def _log_step_metrics(self, inputs: dict[str, Any], logits, targets) -> None:
            # mean_token_accuracy and num_tokens as TRL logs them; its vocabulary-wide entropy is skipped (cost)
            with torch.no_grad():
                n = targets.numel()
                correct = (logits.argmax(-1) == targets).sum().item() if n else 0
            self._metrics["train"]["mean_token_accuracy"].append(correct / n if n else 0.0)
            if "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            else:
                self._total_train_tokens += int(inputs["input_ids"].numel())
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]

    return FastSFTTrainer

