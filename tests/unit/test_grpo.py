"""GRPO on a tiny random Llama: a few steps run, LoRA weights change, guard-rails are logged; bad input is one line."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from mathtune.config import validate_recipe
from mathtune.train.grpo_config import GrpoRecipe as Recipe  # the schema of `mathtune grpo`
from mathtune.errors import UserError
from mathtune.train.grpo import build_rewards, check_gold, grpo_config, run_grpo
from mathtune.train.grpo_guard_rails import GuardRails

# A reward that differs between random completions (share of digits), registered from a user file as a user would.
USER_REWARD = textwrap.dedent('''
    from mathtune.rewards import REWARDS

    @REWARDS.register("digits")
    def digits():
        def reward(completions, **_):
            return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]
        return reward
''')
TASK = {"source": "reasoning_gym", "task": "chain_sum", "config": {"min_terms": 2, "max_terms": 2, "max_digits": 1}}


def recipe(model: str = "default", rewards=None, grpo=None, **trainer) -> Recipe:
    """A GRPO recipe validated as `mathtune grpo` reads one (so a bad trainer block fails here, at load)."""
    return validate_recipe({
        "model": model,
        "data": {"train": {**TASK, "size": 8, "seed": 1}, "eval": {**TASK, "size": 4, "seed": 1000000}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "grpo": {"rewards": rewards or [{"name": "accuracy"}], **(grpo or {})},
        "trainer": {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
                    "save_steps": 1, "disable_tqdm": True, **trainer},
        "eval": {"max_new_tokens": 4, "batch_size": 4},
    }, "grpo-test.yaml", "grpo")


def test_grpo_steps_change_lora_weights_and_log_guard_rails(tiny_checkpoint, tmp_path):
    user_file = tmp_path / "my_rewards.py"
    user_file.write_text(USER_REWARD)
    cfg = recipe(
        str(tiny_checkpoint),
        rewards=[{"name": "accuracy"}, {"name": "format", "weight": 0.2}, {"name": "digits", "weight": 1.0},
                 {"name": "doubt", "weight": 0.5}],
        grpo={"reward_modules": [str(user_file)], "eval_every": 1},
        learning_rate=5e-2,
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = run_grpo(cfg, run_dir, tmp_path / "home")

    assert metrics["steps"] == 2
    # the fresh adapter starts with lora_B = 0; after two updates with a reward that varies it has moved
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)
    history = metrics["history"]
    assert len(history) == 2
    assert all(row["signal_share"] in (0.0, 0.5, 1.0) for row in history)  # 2 groups a step, from SignalMeter
    for row in history:
        for key in ("rewards/accuracy/mean", "rewards/digits/std", "signal_share", "completions/mean_length",
                    "completions/clipped_ratio"):
            assert key in row, key
        assert 0.0 <= row["signal_share"] <= 1.0
    assert sorted(int(s) for s in metrics["evals"]) == [0, 1, 2]  # step 0, eval_every=1, the end
    report = (run_dir / "report.md").read_text()
    assert "Held-out evaluation over training" in report and (run_dir / "grpo.png").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 2


def test_guard_rails_warn_on_zero_accuracy_and_zero_signal():
    class State:
        global_step = 0
        log_history: list = []

    guard, state = GuardRails("accuracy"), State()
    for step in range(1, 6):  # the signal rail looks at a window of 5 steps
        state.global_step = step
        guard.on_log(None, state, None, logs={"reward": 0.0, "rewards/accuracy/mean": 0.0, "frac_reward_zero_std": 1.0})
    assert [row["signal_share"] for row in guard.history] == [0.0] * 5
    assert len(guard.warnings) == 2
    assert "accuracy reward has been 0" in guard.warnings[0] and "signal share at most 0.05" in guard.warnings[1]

    healthy = GuardRails("accuracy")
    for step in range(1, 6):
        state.global_step = step
        healthy.on_log(None, state, None, logs={"reward": 0.5, "rewards/accuracy/mean": 0.25, "frac_reward_zero_std": 0.5})
    assert healthy.warnings == []


def test_signal_meter_counts_groups_with_a_reward_spread():
    from mathtune.train.grpo_callbacks import SignalMeter

    meter = SignalMeter([1.0, 0.2], group_size=4)
    acc = meter.wrap(0, lambda completions, **_: [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, None, 0.0])
    fmt = meter.wrap(1, lambda completions, **_: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    acc(["c"] * 8)
    fmt(["c"] * 8)
    # group 1: all 0.2 (no signal, whatever float noise TRL's std shows); group 2: 1.2 vs 0.2 (signal)
    assert meter.take() == 0.5 and meter.take() is None
    assert acc.__name__ == "<lambda>"  # the wrapped function keeps its name for TRL's logs


def test_signal_meter_judges_the_chosen_rewards_only():
    from mathtune.train.grpo_callbacks import SignalMeter

    all_wrong = [0.0] * 8
    graded = [0.1, 0.3, 0.2, 0.4, 0.5, 0.1, 0.0, 0.2]  # a graded side reward: every group has a spread
    for columns, want in ((None, 1.0), ([0], 0.0)):
        meter = SignalMeter([1.0, 0.5], group_size=4, columns=columns)
        acc = meter.wrap(0, lambda completions, **_: all_wrong)
        rep = meter.wrap(1, lambda completions, **_: graded)
        acc(["c"] * 8)
        rep(["c"] * 8)
        assert meter.take() == want, "on the outcome alone, all-wrong groups carry no signal"


def test_unknown_reward_lists_known_ones():
    with pytest.raises(UserError) as err:
        build_rewards(recipe(rewards=[{"name": "acuracy"}]))
    msg = str(err.value)
    assert "\n" not in msg and "grpo.rewards[0].name" in msg and "'accuracy'" in msg
    assert "doubt" in msg and "overlong" in msg  # the known names are listed


def test_bad_reward_options_are_one_line():
    with pytest.raises(UserError, match=r"grpo.rewards\[0\] \(format\).options: .*marker"):
        build_rewards(recipe(rewards=[{"name": "format", "options": {"marker": "stars"}}]))


def test_accuracy_on_rows_without_gold_is_refused():
    rows = [{"question": "Write a poem", "answer": "", "solution": "", "source": "file"}]
    with pytest.raises(UserError, match="'accuracy' needs gold answers"):
        check_gold(recipe(), rows)
    check_gold(recipe(rewards=[{"name": "format"}]), rows)  # a reward that needs no gold is fine


def test_num_generations_must_divide_the_batch():
    with pytest.raises(UserError) as err:  # at load, before any model or data work
        recipe(per_device_train_batch_size=4, num_generations=3)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("grpo-test.yaml: ") and "num_generations: 3" in msg and "= 4" in msg


def test_unknown_trainer_key_is_one_line():
    with pytest.raises(UserError, match=r"^grpo-test.yaml: trainer.num_generation: not an argument of trl.GRPOConfig "
                                        r"\(did you mean 'num_generations'\?\)$"):
        recipe(num_generation=4)


def test_bad_choice_fails_before_training():
    # TRL itself only notices an unknown loss_type inside the first loss computation
    with pytest.raises(UserError, match=r"trainer.loss_type: expected one of grpo, dr_grpo, dapo.*got 'foo'"):
        recipe(loss_type="foo")


def test_cpu_defaults(tmp_path):
    args = grpo_config(recipe(), tmp_path, [1.0])
    if not torch.cuda.is_available():
        assert args.bf16 is False and args.gradient_checkpointing is False
    assert args.beta == 0.0 and args.reward_weights == [1.0]


def test_cli_unknown_reward_exits_2(tmp_path):
    from typer.testing import CliRunner

    from mathtune.cli import app

    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(textwrap.dedent("""
        data:
          train: {source: reasoning_gym, task: chain_sum, size: 4, seed: 1}
          eval: {source: reasoning_gym, task: chain_sum, size: 2, seed: 1000000}
        grpo: {rewards: [{name: nope}]}
    """))
    result = CliRunner().invoke(app, ["grpo", str(recipe_file), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "unknown reward 'nope'" in result.output and "accuracy" in result.output


def test_shipped_grpo_recipes_validate_offline(tmp_path):
    from importlib import resources

    from mathtune.config import load_recipe
    from mathtune.train.grpo import trainer_args

    folder = resources.files("mathtune").joinpath("recipes")
    paths = [folder / "tiny/grpo_default.yaml", folder / "tiny/sft_then_grpo.yaml",
             folder / "grpo/qwen25_math_r1zero_openmathinstruct2_qlora.yaml", folder / "gsm8k_grpo.yaml"]
    for path in paths:
        cfg = load_recipe(str(path))
        funcs, weights = build_rewards(cfg)
        args = trainer_args(cfg, tmp_path, weights)  # every trainer key is a GRPOConfig argument; groups divide
        assert len(funcs) == len(weights) == len(cfg.grpo.rewards)
        assert args["beta"] == 0.0
    r1 = load_recipe(str(paths[2]))
    assert r1.quantization.load_in_4bit and r1.trainer["use_vllm"] and r1.data.train["source"] == "openmathinstruct2"
    gsm8k = load_recipe(str(paths[3]))  # RL from the GSM8K SFT recipe's adapter, graded on GSM8K test
    assert gsm8k.grpo.adapter == "runs/gsm8k-main/adapter" and gsm8k.data.eval == {"source": "gsm8k", "split": "test"}
    assert gsm8k.grpo.dynamic_sampling.enabled and gsm8k.format == load_recipe("gsm8k").format


def test_grpo_starts_from_an_sft_adapter(tiny_checkpoint, tmp_path):
    from peft import get_peft_model

    from mathtune.models import load_model, lora_config

    cfg0 = recipe(str(tiny_checkpoint))
    sft = get_peft_model(load_model(str(tiny_checkpoint)), lora_config(cfg0.lora))
    for name, param in sft.named_parameters():  # a non-zero B, as a trained SFT adapter has
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    sft.save_pretrained(tmp_path / "sft")
    start = load_file(tmp_path / "sft" / "adapter_model.safetensors")

    user_file = tmp_path / "my_rewards.py"
    user_file.write_text(USER_REWARD)
    cfg = recipe(str(tiny_checkpoint), rewards=[{"name": "digits"}],
                 grpo={"reward_modules": [str(user_file)], "adapter": str(tmp_path / "sft")}, learning_rate=5e-2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = run_grpo(cfg, run_dir, tmp_path / "home")
    end = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert metrics["adapter_in"] == str(tmp_path / "sft")
    assert set(start) == set(end)  # the same adapter, trained further (not a fresh one)
    assert any(not torch.equal(start[k], end[k]) for k in start)


def test_missing_starting_adapter_is_one_line(tiny_checkpoint, tmp_path):
    cfg = recipe(str(tiny_checkpoint), grpo={"adapter": str(tmp_path / "nope")})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(UserError, match="grpo.adapter: .* has no adapter_config.json"):
        run_grpo(cfg, run_dir, tmp_path / "home")


def test_resume_continues_from_the_last_checkpoint(tiny_checkpoint, tmp_path):
    user_file = tmp_path / "my_rewards.py"
    user_file.write_text(USER_REWARD)
    grpo = {"reward_modules": [str(user_file)]}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_grpo(recipe(str(tiny_checkpoint), rewards=[{"name": "digits"}], grpo=grpo), run_dir, tmp_path / "home")
    assert (run_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    longer = recipe(str(tiny_checkpoint), rewards=[{"name": "digits"}], grpo=grpo, max_steps=3)
    metrics = run_grpo(longer, run_dir, tmp_path / "home", resume=True)
    assert metrics["steps"] == 3
    assert [row["step"] for row in metrics["history"]] == [1, 2, 3]  # the report spans the interrupted run too
    assert sorted(int(s) for s in metrics["evals"]) == [0, 2, 3]


def test_grpo_with_dynamic_sampling_pass_rates_and_curriculum(tiny_checkpoint, tmp_path):
    user_file = tmp_path / "my_rewards.py"
    user_file.write_text(USER_REWARD)
    grpo = {"reward_modules": [str(user_file)],
            "dynamic_sampling": {"enabled": True, "max_tries": 2},
            # the random model never answers right: a band of [0, 1] keeps every judged prompt
            "pass_rate": {"enabled": True, "k": 2, "band": [0.0, 1.0], "pool_size": 6, "batch_size": 8,
                          "curriculum": {"every": 1, "shift": 0.0}}}
    cfg = recipe(str(tiny_checkpoint), rewards=[{"name": "accuracy"}, {"name": "digits"}], grpo=grpo)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = run_grpo(cfg, run_dir, tmp_path / "home")

    assert metrics["steps"] == 2 and metrics["rows"]["pool"] == 6
    assert len(metrics["dynamic_sampling"]) == 2 and all(1 <= d["tries"] <= 2 for d in metrics["dynamic_sampling"])
    assert all("dynamic_sampling/dropped_share" in row for row in metrics["history"])
    cached = json.loads((run_dir / "pass_rates" / "step-00000.json").read_text())
    assert len(cached["prompts"]) == 6 and all(len(p["scores"]) == 2 for p in cached["prompts"])
    assert (run_dir / "pass_rates" / "step-00001.json").is_file()  # the curriculum refresh after step 1
    assert [c["step"] for c in metrics["curriculum"]] == [1]
    assert metrics["objective"]["loss_type"] == "dapo" and metrics["objective"]["dynamic_sampling"]["enabled"]
    report = (run_dir / "report.md").read_text()
    assert "loss_type `dapo`" in report and "Truncation:" in report and "dropped (no spread)" in report


def test_loss_variants_reach_trl_and_the_report(tmp_path):
    from mathtune.train.grpo import objective

    cfg = recipe(loss_type="dr_grpo", importance_sampling_level="sequence", scale_rewards="none")
    args = grpo_config(cfg, tmp_path, [1.0])
    obj = objective(cfg, args)
    assert (obj["loss_type"], obj["importance_sampling_level"], obj["scale_rewards"]) == ("dr_grpo", "sequence", "none")
    with pytest.raises(UserError, match="trainer.importance_sampling_level: expected one of token, sequence"):
        recipe(importance_sampling_level="seq")
