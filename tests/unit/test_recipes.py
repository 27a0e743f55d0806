"""Every shipped recipe: validates, opens with its command, loads by its shipped name, names data that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mathtune.config import load_recipe, shipped_recipes
from mathtune.data.curation import train_entries
from mathtune.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "src/mathtune/recipes"
# recipes/accelerate/ holds accelerate's launch configs (tests/unit/test_accelerate_configs.py), not recipes
SHIPPED = sorted(p for p in PACKAGED.rglob("*.yaml") if p.parent.name != "accelerate") + \
    sorted((ROOT / "recipes").rglob("*.yaml"))
IDS = [str(p.relative_to(ROOT)) for p in SHIPPED]
COMMAND_RE = re.compile(r"^#.*\bmathtune [a-z]")


def header(path: Path) -> list[str]:
    """The comment block a recipe opens with."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def test_there_are_shipped_recipes():
    assert len(SHIPPED) >= 7 and {"default", "tiny/sft_gsm8k", "sft/tinyllama_mix_cot"} <= set(shipped_recipes())


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_recipe_validates(path):
    recipe = load_recipe(str(path))
    assert recipe.data.eval["source"]


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_recipe_opens_with_its_command(path):
    lines = header(path)
    assert lines and lines[0].startswith("# "), f"{path} must start with a comment saying what it is for"
    assert any(COMMAND_RE.match(line) for line in lines), f"{path}: no `mathtune ...` command in its opening comment"


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_recipe_declares_its_kind_and_loads_as_it(path):
    # the kind picks the schema, and with it the TRL config the trainer block is checked against at load
    kind = yaml.safe_load(path.read_text()).get("kind")
    assert kind in {"sft", "grpo", "verifier"}, f"{path}: no `kind:` (sft, grpo or verifier)"
    assert load_recipe(str(path), kind=kind).kind == kind
    other = "grpo" if kind != "grpo" else "sft"
    with pytest.raises(UserError, match=f"kind: this is a '{kind}' recipe; this command runs '{other}' recipes"):
        load_recipe(str(path), kind=other)


def test_run_folder_saves_only_its_stage_blocks():
    sft = load_recipe(None).model_dump()
    assert sft["kind"] == "sft" and "grpo" not in sft and "verifier" not in sft
    assert "grpo" in load_recipe("tiny/grpo_default").model_dump()


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.is_relative_to(PACKAGED)], ids=lambda p: p.stem)
def test_recipe_loads_by_its_shipped_name(path):
    name = str(path.relative_to(PACKAGED).with_suffix(""))
    assert load_recipe(name).model_dump() == load_recipe(str(path)).model_dump()


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_relative_data_paths_exist_from_the_repository_root(path):
    recipe = load_recipe(str(path))
    specs = [*train_entries(recipe.data.train), recipe.data.eval, *recipe.data.extra_eval.values()]
    for spec in specs:
        local = spec.get("path")
        if local and not Path(local).expanduser().is_absolute():
            assert (ROOT / local).exists(), f"{path}: data path {local} does not exist"


@pytest.mark.parametrize("path", sorted((PACKAGED / "sft").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_seed_recipe_names_its_tiny_twin(path):
    twins = re.findall(r"tiny/[a-z0-9_]+", "\n".join(header(path)))
    assert twins and all(t in shipped_recipes() for t in twins), f"{path}: no existing tiny twin named"


def test_unknown_shipped_name_is_one_line_with_close_names():
    with pytest.raises(UserError) as err:
        load_recipe("tiny/sft_gsm8")
    msg = str(err.value)
    assert "recipe file not found" in msg and "close shipped recipes: tiny/sft_gsm8k" in msg and "\n" not in msg


def test_overrides_reach_into_source_lists():
    recipe = load_recipe("tiny/sft_mix", ["data.train.1.weight=0.5", "data.train.1.filters.1.max=99"])
    assert recipe.data.train[1]["weight"] == 0.5 and recipe.data.train[1]["filters"][1]["max"] == 99
    with pytest.raises(UserError, match="'7' is not an index of that list"):
        load_recipe("tiny/sft_mix", ["data.train.7.weight=1"])
