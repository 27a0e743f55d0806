"""Train a verifier, `mathtune verifier train RECIPE [--data DATA_RUN]`: LoRA (QLoRA on a GPU) with either head,
a 2-way cross-entropy on the (False, True) logits, optionally class-weighted; the adapter lands in RUN/adapter.

Trainer arguments are built as for SFT (`mathtune.train.sft.sft_config`: the recipe's `trainer:` block, bf16 and
gradient checkpointing off on CPU), then handed to a plain transformers Trainer with this loss.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from transformers import Trainer

from mathtune.config import Recipe
from mathtune.runs import atomic_write_json, save_trained_adapter
from mathtune.verifier.data import balance
from mathtune.verifier.heads import Verifier, collate, load_base, pair_logits, peft_config

log = logging.getLogger("mathtune")
INFO_FILE = "verifier.json"


class VerifierTrainer(Trainer):
    """Trainer whose loss is the (optionally class-weighted) cross-entropy of a head's (False, True) logits."""

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it by the accumulation steps

    def __init__(self, *args, head: str, token_ids: tuple[int, int], weights: dict[bool, float] | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head, self.token_ids = head, token_ids
        self.class_weights = None if weights is None else torch.tensor([weights[False], weights[True]])

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = pair_logits(model, inputs, self.head, self.token_ids)
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        loss = torch.nn.functional.cross_entropy(logits, inputs["labels"], weight=weight)
        return (loss, {"logits": logits}) if return_outputs else loss


def _collator(pad_id: int):
    def collate_fn(features: list[dict]) -> dict[str, torch.Tensor]:
        batch = collate([f["input_ids"] for f in features], pad_id)
        batch["labels"] = torch.tensor([int(f["label"]) for f in features])
        return batch

    return collate_fn


def build_trainer(recipe: Recipe, model_path: str, tokenizer, rows: list[dict], output_dir: Path) -> VerifierTrainer:
    """A VerifierTrainer with a fresh LoRA adapter (and, for seq_cls, a trainable `score` layer) on the base."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from mathtune.train.sft import sft_config

    vcfg = recipe.verifier
    rows, weights = balance(rows, vcfg.balance, recipe.seed)
    args = sft_config(recipe, output_dir, has_validation=False)
    args.remove_unused_columns = False  # the collator needs `input_ids` and `label` as they are
    args.label_names = ["labels"]
    # transformers 5 renames gradient_checkpointing to activation_checkpointing (the old name warns)
    checkpointing = getattr(args, "activation_checkpointing", None)
    checkpointing = args.gradient_checkpointing if checkpointing is None else checkpointing
    torch.manual_seed(recipe.seed)  # the seq_cls `score` layer starts from a seeded random init
    model = load_base(model_path, vcfg.head, tokenizer, recipe.quantization)
    if recipe.quantization.load_in_4bit or recipe.quantization.load_in_8bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.enable_input_require_grads()  # checkpointed LoRA needs a grad path through the frozen embeddings
    model = get_peft_model(model, peft_config(recipe.lora, vcfg.head))
    verifier = Verifier(model, tokenizer, vcfg, recipe.format)
    ids = verifier.encode_rows(rows)
    dataset = [{"input_ids": x, "label": r["is_correct"]} for x, r in zip(ids, rows)]
    return VerifierTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=_collator(verifier.pad_id),
        processing_class=tokenizer, head=vcfg.head, token_ids=verifier.token_ids, weights=weights,
    )


def train_verifier(recipe: Recipe, model_path: str, rows: list[dict], run_dir: Path, resume: bool) -> Path:
    """Train on `rows`, save RUN/adapter (with the tokenizer) and RUN/verifier.json; returns the adapter folder."""
    from mathtune.models import load_tokenizer
    from mathtune.train.sft import last_complete_checkpoint

    adapter_dir = run_dir / "adapter"
    if (adapter_dir / "adapter_config.json").is_file():
        return adapter_dir
    tokenizer = load_tokenizer(model_path)
    ckpt_dir = run_dir / "checkpoints"
    trainer = build_trainer(recipe, model_path, tokenizer, rows, ckpt_dir)
    from mathtune.trackers import point_trackers

    point_trackers(trainer, run_dir)
    resume_from = last_complete_checkpoint(ckpt_dir) if resume else None
    start = time.time()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return save_verifier(trainer, tokenizer, recipe, model_path, len(rows), run_dir, time.time() - start)


def save_verifier(trainer, tokenizer, recipe: Recipe, model_path: str, n_rows: int, run_dir: Path, seconds: float) -> Path:
    """Write RUN/adapter (LoRA + seq_cls `score`, tokenizer) atomically, then RUN/verifier.json and the train log."""
    adapter_dir = save_trained_adapter(trainer, tokenizer, run_dir)
    atomic_write_json(run_dir / "train_log.json", {"seconds": seconds, "log_history": trainer.state.log_history})
    atomic_write_json(run_dir / INFO_FILE, {
        "base_model": recipe.model, "base_path": model_path, "head": recipe.verifier.head,
        "train_rows": n_rows, "balance": recipe.verifier.balance,
    })
    return adapter_dir
