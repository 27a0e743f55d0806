"""The two verifier heads, both LoRA on a causal LM checkpoint; each turns a (question, solution) pair into two
logits (False, True), so training, scoring and every metric treat them alike.

- `lm`: the instruction prompt asks for True/False; the logits are the LM's next-token logits of the first token of
  `true_word` and `false_word`, and the score is P(True) renormalised over those two tokens.
- `seq_cls`: AutoModelForSequenceClassification with a 2-way `score` layer on the last token; the layer is trained in
  full and saved with the adapter (`modules_to_save`), so a reloaded verifier scores exactly as the trained one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from mathtune.errors import UserError

if TYPE_CHECKING:
    from mathtune.config import FormatConfig, LoraConfig, QuantConfig
    from mathtune.verifier.config import VerifierConfig

SCORE_MODULE = "score"  # the classification layer of transformers' *ForSequenceClassification models


def verifier_text(row: dict, cfg: "VerifierConfig", fmt: "FormatConfig", tokenizer) -> str:
    """The verifier's input: the prompt filled with the row, in the recipe's template, ready for the answer word."""
    from mathtune.data.formats import build_prompt

    text = cfg.prompt.format(question=row["question"], solution=row["solution"], answer=row.get("answer", ""))
    # instruction "" keeps build_prompt from appending the solver's "Solve the problem step by step" sentence
    return build_prompt(text, fmt.model_copy(update={"instruction": ""}), tokenizer)


def answer_token_ids(tokenizer, cfg: "VerifierConfig") -> tuple[int, int]:
    """(False id, True id): the first token of each answer word, which must differ."""
    ids = []
    for word in (cfg.false_word, cfg.true_word):
        tokens = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not tokens:
            raise UserError(f"verifier: the tokenizer turns {word!r} into no tokens; choose other answer words")
        ids.append(tokens[0])
    if ids[0] == ids[1]:
        raise UserError(f"verifier: {cfg.true_word!r} and {cfg.false_word!r} start with the same token; "
                        "choose answer words whose first tokens differ")
    return ids[0], ids[1]


def load_base(path: str, head: str, tokenizer, quant: "QuantConfig | None" = None):
    """The base model for a head: a causal LM (`lm`) or a sequence classifier with a fresh 2-way `score` (`seq_cls`)."""
    from mathtune.models import load_model

    if head == "lm":
        return load_model(path, quant)
    from transformers import AutoModelForSequenceClassification

    from mathtune.models import _quantization  # the same 4-bit/8-bit rules as every other model load

    kwargs: dict[str, Any] = {"dtype": torch.float32, "num_labels": 2, "pad_token_id": tokenizer.pad_token_id}
    bnb = _quantization(quant)
    if bnb is not None:
        kwargs.update(quantization_config=bnb, device_map={"": 0})
    try:
        return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"model: cannot load {path!r} with a classification head: {str(exc).splitlines()[0]}") from exc


def peft_config(lora: "LoraConfig", head: str):
    """PEFT LoRA settings for a head; seq_cls trains and saves the `score` layer in full alongside the adapter."""
    from mathtune.models import lora_config

    cfg = lora_config(lora)
    if head == "seq_cls":
        cfg.task_type = "SEQ_CLS"
        cfg.modules_to_save = sorted(set(cfg.modules_to_save or []) | {SCORE_MODULE})
    return cfg


def encode(texts: list[str], tokenizer, max_length: int) -> list[list[int]]:
    """Token ids of each text; an over-long text loses its start, never the end where the answer word follows."""
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(ids[-max_length:])
    return out


def collate(batch_ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch with explicit position ids, so a row scores the same whatever else is in its batch."""
    width = max(len(ids) for ids in batch_ids)
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in batch_ids])
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch_ids])
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def pair_logits(model, batch: dict[str, torch.Tensor], head: str, token_ids: tuple[int, int]) -> torch.Tensor:
    """(batch, 2) logits for (False, True)."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    if head == "lm":
        logits = model(**inputs, logits_to_keep=1).logits[:, -1, :]
        return logits[:, list(token_ids)].float()
    return model(**inputs).logits.float()


class Verifier:
    """A loaded verifier: `score(rows)` -> P(correct) per row of {question, solution, answer}."""

    def __init__(self, model, tokenizer, cfg: "VerifierConfig", fmt: "FormatConfig"):
        self.model, self.tokenizer, self.cfg, self.fmt = model, tokenizer, cfg, fmt
        self.token_ids = answer_token_ids(tokenizer, cfg) if cfg.head == "lm" else (0, 1)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode_rows(self, rows: list[dict]) -> list[list[int]]:
        """Token ids of each row's verifier text."""
        texts = [verifier_text(r, self.cfg, self.fmt, self.tokenizer) for r in rows]
        return encode(texts, self.tokenizer, self.cfg.max_length)

    @torch.inference_mode()
    def score(self, rows: list[dict], batch_size: int | None = None, progress: bool = False) -> list[float]:
        """P(True) for each row, in order (batches sorted by length; scores do not depend on the batching)."""
        from tqdm.auto import tqdm

        self.model.eval()
        ids = self.encode_rows(rows)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        size = batch_size or self.cfg.score_batch_size
        device = next(self.model.parameters()).device
        scores = [0.0] * len(ids)
        for start in tqdm(range(0, len(order), size), desc="verify", disable=not progress):
            chunk = order[start : start + size]
            batch = {k: v.to(device) for k, v in collate([ids[i] for i in chunk], self.pad_id).items()}
            probs = torch.softmax(pair_logits(self.model, batch, self.cfg.head, self.token_ids), dim=-1)[:, 1]
            for i, p in zip(chunk, probs.tolist()):
                scores[i] = p
        return scores
