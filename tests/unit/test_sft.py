"""LoRA SFT on a tiny random Llama: loss on completions only (EOS included), weights change, resume is exact."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import TrainerCallback

from mathtune.config import Recipe
from mathtune.data.formats import to_prompt_completion
from mathtune.errors import UserError
from mathtune.models import load_model, load_tokenizer
from mathtune.train.sft import build_trainer, last_complete_checkpoint, train_sft

ROWS = [{"question": f"{a} + {b} =", "answer": str(a + b), "solution": f"{a} + {b} = {a + b}", "source": "t"}
        for a in range(4) for b in range(4)]


def recipe(**trainer) -> Recipe:
    return Recipe.model_validate({
        "data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
        "trainer": {"max_steps": 4, "per_device_train_batch_size": 4, "save_steps": 2, "logging_steps": 1,
                    "disable_tqdm": True, "learning_rate": 1e-2, **trainer},
    })


def dataset(tok):
    return Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))


def test_labels_cover_completion_and_eos_only(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    trainer = build_trainer(recipe(), load_model(str(tiny_checkpoint)), tok, dataset(tok), None, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        target = ids[labels != -100].tolist()
        text = tok.decode(target)
        assert target[-1] == tok.eos_token_id, "EOS must be a training target so the tuned model stops"
        assert text.startswith(tuple(f"{a} + " for a in range(4))) and "####" in text
        assert "<a>" not in text and "<u>" not in text, "prompt tokens must not be trained on"


def test_training_changes_lora_weights_and_saves_safetensors(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    adapter, history = train_sft(recipe(), load_model(str(tiny_checkpoint)), tok, dataset(tok), None, tmp_path, False)
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b), "lora_B starts at zero; training must move it"
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 4


class StopAt(TrainerCallback):
    """Simulate Ctrl-C right after step `step` was checkpointed."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_resume_after_interrupt_gives_the_same_adapter(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ref_adapter, _ = train_sft(recipe(), load_model(str(tiny_checkpoint)), tok, dataset(tok), None, tmp_path / "a", False)
    run = tmp_path / "b"
    trainer = build_trainer(recipe(), load_model(str(tiny_checkpoint)), tok, dataset(tok), None, run / "checkpoints")
    trainer.add_callback(StopAt(2))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert last_complete_checkpoint(run / "checkpoints").name == "checkpoint-2"
    resumed, _ = train_sft(recipe(), load_model(str(tiny_checkpoint)), tok, dataset(tok), None, run, True)
    ref, got = load_file(ref_adapter / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert ref.keys() == got.keys()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key])


def test_half_written_checkpoint_is_skipped(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-4").mkdir()  # killed before its trainer state was written
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-2"


def test_unknown_trainer_key_is_one_line(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    with pytest.raises(UserError, match=r"trainer\.learning_rat: not an argument of trl.SFTConfig \(did you mean 'learning_rate'"):
        build_trainer(recipe(learning_rat=1), load_model(str(tiny_checkpoint)), tok, dataset(tok), None, tmp_path)


def test_qlora_without_cuda_is_a_clear_error(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    from mathtune.config import QuantConfig

    with pytest.raises(UserError, match="needs a CUDA GPU"):
        load_model(str(tiny_checkpoint), QuantConfig(load_in_4bit=True))
