"""Recipes: every shipped recipe validates; overrides; each bad input is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathtune.config import apply_overrides, load_recipe
from mathtune.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "recipes").rglob("*.yaml")) + sorted(
    p for p in (ROOT / "src/mathtune/recipes").rglob("*.yaml") if p.parent.name != "accelerate")  # launch configs


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(str(path))
    assert recipe.data.eval["source"]


def test_shipped_recipes_start_with_their_command():
    for path in SHIPPED:
        head = path.read_text().splitlines()[:3]
        assert any("mathtune " in line for line in head), f"{path} does not open with its command"


def test_default_recipe_and_overrides():
    recipe = load_recipe(None, ["lora.r=8", "trainer.learning_rate=1e-4", "data.train.size=10"])
    assert recipe.model == "default"
    assert recipe.lora.r == 8
    assert recipe.trainer["learning_rate"] == 1e-4
    assert recipe.data.train["size"] == 10


def test_apply_overrides_does_not_touch_input():
    raw = {"lora": {"r": 4}}
    out = apply_overrides(raw, ["lora.r=8", "eval.limit=5"])
    assert raw == {"lora": {"r": 4}} and out == {"lora": {"r": 8}, "eval": {"limit": 5}}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["lora.rank=3"], "lora.rank: unknown key (expected one of: alpha, dropout"),
        (["bogus=1"], "bogus: unknown key"),
        (["lora.r=abc"], "lora.r: "),
        (["lora.r=0"], "lora.r: "),
        (["data.train.size=abc"], "data.train.size: expected an integer, got 'abc'"),
        (["data.train.source=gsm8kk"], "data.train.source: unknown data source 'gsm8kk'. Did you mean 'gsm8k'?"),
        (["data.train.task=chain_summ"], "data.train"),
        (["format.template=markdown"], "format.template: "),
        (["eval.max_new_tokens=-1"], "eval.max_new_tokens: "),
        (["nokey"], "--set 'nokey': expected key=value"),
    ],
)
def test_bad_recipe_values_give_one_line(overrides, expected):
    with pytest.raises(UserError) as err:
        load_recipe(None, overrides)
    msg = str(err.value)
    assert expected in msg
    assert "\n" not in msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: recipe file not found"):
        load_recipe(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml: line"):
        load_recipe(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_recipe(str(scalar))
    nodata = tmp_path / "nodata.yaml"
    nodata.write_text("model: default\n")
    with pytest.raises(UserError, match="data: missing required key"):
        load_recipe(str(nodata))


def test_a_yaml_boolean_key_is_named_as_such(tmp_path):
    recipe = tmp_path / "bool.yaml"
    # `on:` unquoted is the boolean True in YAML 1.1: inside a free-form block and at a block of fixed keys
    recipe.write_text("kind: grpo\ndata: {eval: {source: gsm8k, split: test}}\ngrpo:\n  dynamic_sampling: {on: [accuracy]}\n")
    with pytest.raises(UserError) as err:
        load_recipe(str(recipe))
    msg = str(err.value)
    assert "grpo.dynamic_sampling: a key was read as the boolean True" in msg and "quote it" in msg
    assert "\n" not in msg
    recipe.write_text("data: {eval: {source: gsm8k, split: test}}\ntrainer: {yes: 1}\n")
    with pytest.raises(UserError, match=r"trainer: a key was read as the boolean True"):
        load_recipe(str(recipe))


@pytest.mark.parametrize("kind, override, message", [
    ("sft", "trainer.learning_rat=1e-4", "trainer.learning_rat: not an argument of trl.SFTConfig (did you mean 'learning_rate'?)"),
    ("sft", "trainer.per_device_train_batch_size=0", "trainer.per_device_train_batch_size: expected a value >= 1, got 0"),
    ("sft", "trainer.learning_rate=-0.001", "trainer.learning_rate: expected a value >= 0, got -0.001"),
    ("sft", "trainer.num_train_epochs=0", "trainer.num_train_epochs: expected a value > 0, got 0"),
    ("sft", "trainer.max_steps=1.5", "trainer.max_steps: trl.SFTConfig expects an integer, got 1.5"),
    ("sft", "trainer.report_to=7", "trainer.report_to: trl.SFTConfig expects"),
    ("sft", "trainer.optim=adamw_nope", "trainer: trl.SFTConfig rejects these settings: adamw_nope"),
    ("sft", "trainer.num_generations=4", "not an argument of trl.SFTConfig"),  # a GRPO key in an SFT recipe
    ("grpo", "trainer.num_generations=3", "trainer.num_generations: 3 must be >= 2 and divide"),
    ("grpo", "trainer.beta=-1", "trainer.beta: expected a value >= 0"),
    ("grpo", "trainer.loss_type=ppo", "trainer.loss_type: expected one of"),
    ("verifier", "trainer.gradient_accumulation_steps=0", "trainer.gradient_accumulation_steps: expected a value >= 1"),
])
def test_trainer_block_is_checked_at_load_against_its_stage(kind, override, message):
    default = {"sft": None, "grpo": "tiny/grpo_default", "verifier": "tiny/verifier_default"}[kind]
    with pytest.raises(UserError) as err:
        load_recipe(default, [override], kind)
    msg = str(err.value)
    assert message in msg and "\n" not in msg
    assert msg.startswith("default recipe: " if default is None else f"{default}: ")  # the recipe is named


def test_gpu_settings_still_load_on_a_cpu():
    # device levers are checked where the device is known (train/sft.py), not at load: a GPU recipe validates here
    recipe = load_recipe("sft/tinyllama_gsm8k_qlora")
    assert recipe.trainer["bf16"] is True and recipe.trainer["optim"] == "paged_adamw_32bit"


def test_wrong_kind_and_unknown_kind_are_one_line():
    with pytest.raises(UserError, match=r"^tiny/grpo_default: kind: this is a 'grpo' recipe; this command runs 'sft'"):
        load_recipe("tiny/grpo_default", kind="sft")
    with pytest.raises(UserError, match=r"kind: unknown recipe kind 'spf'. Did you mean 'sft'\?"):
        load_recipe(None, ["kind=spf"])
    assert load_recipe(None, ["kind=grpo", "trainer={}", "lora.r=4"], kind="grpo").kind == "grpo"
