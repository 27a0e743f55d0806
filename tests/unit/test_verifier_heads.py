"""Verifier heads on a tiny random Llama: scores are P(True) as defined and do not depend on batching; training
moves the weights; a saved and reloaded verifier (seq_cls: `score` saved via modules_to_save) scores exactly as the
trained one; a run from another base model, a non-run folder and bad labels are one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mathtune.cli import app
from mathtune.config import dump_recipe
from mathtune.verifier.config import VerifierRecipe as Recipe  # the schema of `mathtune verifier`
from mathtune.errors import UserError
from mathtune.models import load_tokenizer
from mathtune.verifier.heads import Verifier, answer_token_ids, load_base, verifier_text
from mathtune.verifier.load import check_base, load_verifier, verifier_info
from mathtune.verifier.train import build_trainer, save_verifier

ROWS = [{"question": f"{a} + {b} =", "solution": f"{a} + {b} = {c}", "answer": str(c), "is_correct": c == a + b,
         "group": f"{a}{b}"} for a in range(3) for b in range(3) for c in (a + b, a + b + 1)]


def recipe(model: str, head: str, **verifier) -> Recipe:
    return Recipe.model_validate({
        "model": model,
        "data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "trainer": {"max_steps": 3, "per_device_train_batch_size": 6, "learning_rate": 5e-2, "save_steps": 100,
                    "disable_tqdm": True, "logging_steps": 1},
        "verifier": {"head": head, "max_length": 200, "score_batch_size": 4, **verifier},
        # exact reload is about the saved weights: under bf16 autocast (speed.precision auto on a bf16-fast CPU) the
        # trainer's in-memory model keeps accelerate's autocast forward, so its scores differ from fp32 by ~1e-4
        "speed": {"precision": "fp32"},
    })


def test_lm_head_score_is_p_true_over_the_two_tokens(tiny_checkpoint):
    tok = load_tokenizer(str(tiny_checkpoint))
    cfg = recipe(str(tiny_checkpoint), "lm")
    model = load_base(str(tiny_checkpoint), "lm", tok)
    verifier = Verifier(model, tok, cfg.verifier, cfg.format)
    false_id, true_id = answer_token_ids(tok, cfg.verifier)
    assert (false_id, true_id) == (tok.convert_tokens_to_ids("F"), tok.convert_tokens_to_ids("T"))
    scores = verifier.score(ROWS[:5])
    for row, got in zip(ROWS[:5], scores):
        ids = tok(verifier_text(row, cfg.verifier, cfg.format, tok), add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1]
        expected = torch.softmax(logits[[false_id, true_id]], -1)[1].item()
        assert got == pytest.approx(expected, abs=1e-5)
    assert verifier.score(ROWS[:5], batch_size=1) == pytest.approx(scores, abs=1e-5), "padding must not move scores"


def test_prompt_placeholders_are_filled(tiny_checkpoint):
    tok = load_tokenizer(str(tiny_checkpoint))
    cfg = recipe(str(tiny_checkpoint), "lm", prompt="Q: {question} S: {solution} A: {answer}")
    text = verifier_text(ROWS[1], cfg.verifier, cfg.format, tok)
    assert text == "<u>Q: 0 + 0 = S: 0 + 0 = 1 A: 1\n<a>"


def test_answer_words_sharing_a_first_token_are_an_error(tiny_checkpoint):
    tok = load_tokenizer(str(tiny_checkpoint))
    cfg = recipe(str(tiny_checkpoint), "lm", true_word="Yes", false_word="Yep")
    with pytest.raises(UserError, match="start with the same token"):
        answer_token_ids(tok, cfg.verifier)


def train_and_save(cfg: Recipe, path: str, run_dir):
    """Train a few steps, keep the in-memory verifier's scores, save the run as `verifier train` does."""
    tok = load_tokenizer(path)
    trainer = build_trainer(cfg, path, tok, ROWS, run_dir / "checkpoints")
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}
    trainer.train()
    trained = Verifier(trainer.model, tok, cfg.verifier, cfg.format).score(ROWS)
    save_verifier(trainer, tok, cfg, path, len(ROWS), run_dir, 0.0)
    (run_dir / "recipe.yaml").write_text(dump_recipe(cfg))
    (run_dir / "run.json").write_text("{}")
    after = dict(trainer.model.named_parameters())
    changed = {k for k, v in before.items() if not torch.equal(v, after[k].detach())}
    return trained, changed


@pytest.fixture(scope="module")
def seq_cls_run(tiny_checkpoint, tmp_path_factory):
    run = tmp_path_factory.mktemp("seqcls")
    trained, changed = train_and_save(recipe(str(tiny_checkpoint), "seq_cls"), str(tiny_checkpoint), run)
    return run, trained, changed


def test_seq_cls_trains_lora_and_score_and_reloads_exactly(seq_cls_run, tiny_checkpoint, tmp_path):
    run, trained, changed = seq_cls_run
    assert any("lora_B" in k for k in changed), "LoRA weights must move"
    assert any("score" in k for k in changed), "the classification layer is trained (modules_to_save)"
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert "score" in config["modules_to_save"] and config["task_type"] == "SEQ_CLS"
    torch.manual_seed(1234)  # a different random `score` init: only the saved layer can give the same scores
    reloaded = load_verifier(run, tmp_path).score(ROWS)
    assert reloaded == pytest.approx(trained, abs=1e-6)
    torch.manual_seed(1234)
    fresh = Verifier(load_base(str(tiny_checkpoint), "seq_cls", load_tokenizer(str(tiny_checkpoint))),
                     load_tokenizer(str(tiny_checkpoint)), recipe("x", "seq_cls").verifier, Recipe.model_validate(
                         {"data": {"eval": {"source": "file", "path": "x.jsonl"}}}).format).score(ROWS)
    assert max(abs(a - b) for a, b in zip(fresh, trained)) > 1e-4, "control: without the saved score layer they differ"


def test_lm_head_trains_and_reloads_exactly(tiny_checkpoint, tmp_path):
    cfg = recipe(str(tiny_checkpoint), "lm", balance="weight")
    trained, changed = train_and_save(cfg, str(tiny_checkpoint), tmp_path / "run")
    assert any("lora_B" in k for k in changed)
    reloaded = load_verifier(tmp_path / "run", tmp_path).score(ROWS)
    assert reloaded == pytest.approx(trained, abs=1e-6)
    untrained = load_verifier(tmp_path / "run", tmp_path, untrained=True).score(ROWS)
    assert untrained != pytest.approx(trained, abs=1e-4)


def test_run_from_another_base_model_is_refused(seq_cls_run, tmp_path):
    from support.tiny import tiny_model, tiny_tokenizer

    other = tmp_path / "other-base"
    tiny_model(seed=5).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    run = seq_cls_run[0]
    check_base(run, verifier_info(run)["base_path"], tmp_path)  # its own base passes
    with pytest.raises(UserError, match=r"trained on base model '.*model' \(.*\), not '.*other-base'; use --model"):
        check_base(run, str(other), tmp_path)


def test_folder_that_is_not_a_verifier_run_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a finished verifier run"):
        verifier_info(tmp_path)


def test_cli_bad_label_and_other_base_are_one_line_errors(seq_cls_run, tmp_path, monkeypatch):
    from support.tiny import tiny_model, tiny_tokenizer

    monkeypatch.setenv("MATHTUNE_HOME", str(tmp_path))
    run = seq_cls_run[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "1", "is_correct": 1}) + "\n"
                   + json.dumps({"question": "q", "answer": "2", "is_correct": "nope"}) + "\n")
    result = CliRunner().invoke(app, ["verifier", "eval", str(run), "--data", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: --data: {bad}: row 2: 'is_correct': expected a boolean label "
                                     "(true/false/1/0), got 'nope'")
    other = tmp_path / "other"
    tiny_model(seed=3).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    result = CliRunner().invoke(app, ["eval", "--model", str(other), "--bench", "chain_sum", "--limit", "2",
                                      "--samples", "2", "--temperature", "0.8", "--verifier", str(run),
                                      "--output", str(tmp_path / "ev")])
    assert result.exit_code == 2 and "trained on base model" in result.output
    assert not (tmp_path / "ev").exists(), "refused before any run folder is made"


def test_cli_eval_on_labelled_file_writes_metrics(seq_cls_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MATHTUNE_HOME", str(tmp_path))
    run = seq_cls_run[0]
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    result = CliRunner().invoke(app, ["verifier", "eval", str(run), "--data", str(data), "--output", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["n"] == len(ROWS) and 0 <= metrics["auroc"] <= 1
    assert (tmp_path / "o" / "reliability.png").is_file() and (tmp_path / "o" / "selection.png").is_file()
    assert metrics["selection"][-1]["n"] == 2  # two solutions per question
