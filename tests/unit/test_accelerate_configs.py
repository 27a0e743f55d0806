"""The shipped `accelerate launch` configs (recipes/accelerate/): each parses with accelerate's own config class and
launch parser, names only keys accelerate knows, and resolves to the distributed setup it says (FSDP and DeepSpeed
plugins built from the environment the launcher would set; deepspeed itself need not be installed)."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
import yaml
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.commands.launch import _validate_launch_command, launch_command_parser

from mathtune.config import shipped_recipes

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "src/mathtune/recipes/accelerate"
# file -> (accelerate's distributed type, processes, what it must set)
EXPECTED = {
    "ddp.yaml": ("MULTI_GPU", 8, {}),
    "cpu_ddp.yaml": ("MULTI_GPU", 2, {}),
    "multinode.yaml": ("MULTI_GPU", 16, {"num_machines": 2}),
    "fsdp2.yaml": ("FSDP", 8, {}),
    "zero2.yaml": ("DEEPSPEED", 8, {}),
    "zero3.yaml": ("DEEPSPEED", 8, {}),
    "zero3_offload.yaml": ("DEEPSPEED", 8, {}),
}


def launch_args(path: Path):
    """The launch arguments `accelerate launch --config_file PATH -m mathtune train R` resolves to."""
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "mathtune", "train", "recipe.yaml"])
    return _validate_launch_command(args)


def test_every_config_is_expected():
    assert sorted(p.name for p in FOLDER.glob("*.yaml")) == sorted(EXPECTED)
    assert not any(name.startswith("accelerate/") for name in shipped_recipes()), "launch configs are not recipes"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_with_accelerates_classes(name):
    path = FOLDER / name
    text = path.read_text()
    command = text.splitlines()[1]
    assert command.startswith(f"#   accelerate launch --config_file src/mathtune/recipes/accelerate/{name} ")
    assert " -m mathtune " in command, "the second line is the exact command"
    config = ClusterConfig.from_yaml_file(str(path))  # unknown top-level keys raise here
    kind, processes, extra = EXPECTED[name]
    assert config.distributed_type.value == kind and config.num_processes == processes
    assert str(getattr(config.mixed_precision, "value", config.mixed_precision)) == "no", "precision is the recipe's (trainer.bf16 / speed.precision)"
    for key, value in extra.items():
        assert getattr(config, key) == value
    # accelerate copies fsdp_config / deepspeed_config entries onto its launch arguments without checking their
    # names: check each against the launch parser, and that the parser takes its value
    parser = launch_command_parser()
    known = {action.dest: action for action in parser._actions}
    for block in ("fsdp_config", "deepspeed_config"):
        for key, value in (yaml.safe_load(text).get(block) or {}).items():
            assert key in known, f"{name}: {block}.{key} is not an accelerate launch option"
            parsed = parser.parse_args([f"--{key}", str(value).lower() if isinstance(value, bool) else str(value),
                                        "x.py"])
            assert str(getattr(parsed, key)).lower() == str(value).lower()
    args, _, _ = launch_args(path)
    assert (args.use_fsdp, args.use_deepspeed) == (kind == "FSDP", kind == "DEEPSPEED")


def _plugin_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(("ACCELERATE", "FSDP"))}


def test_fsdp2_is_full_shard_with_per_layer_wrapping():
    from accelerate.commands.launch import prepare_multi_gpu_env
    from accelerate.utils import FullyShardedDataParallelPlugin

    args, _, _ = launch_args(FOLDER / "fsdp2.yaml")
    with mock.patch.dict(os.environ, _plugin_env(prepare_multi_gpu_env(args))):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True  # FSDP2's FULL_SHARD
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert type(plugin.cpu_offload).__name__ == "OffloadPolicy"  # FSDP2: the no-offload policy (CPUOffloadPolicy offloads)


@pytest.mark.parametrize("name, stage, offload", [("zero2.yaml", 2, "none"), ("zero3.yaml", 3, "none"),
                                                  ("zero3_offload.yaml", 3, "cpu")])
def test_deepspeed_configs_resolve_to_their_zero_stage(name, stage, offload):
    from accelerate.commands.launch import prepare_deepspeed_cmd_env
    from accelerate.utils import DeepSpeedPlugin

    args, defaults, _ = launch_args(FOLDER / name)
    # what `accelerate launch` sets before building the DeepSpeed environment (commands/launch.py)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    with mock.patch.dict(os.environ, _plugin_env(env)):
        plugin = DeepSpeedPlugin()
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage
    assert zero["offload_optimizer"]["device"] == offload and zero["offload_param"]["device"] == offload
    # left to the Trainer, which fills them from the recipe's trainer: block
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"
    assert plugin.deepspeed_config["gradient_clipping"] == "auto"
    if stage == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # the adapter saves as plain weights
