"""Recipes: every shipped recipe validates; overrides; each bad input is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathtune.config import apply_overrides, load_recipe
from mathtune.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "recipes").rglob("*.yaml")) + sorted((ROOT / "src/mathtune/recipes").rglob("*.yaml"))


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
