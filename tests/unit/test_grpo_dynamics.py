"""GRPO dynamics: dynamic sampling refills (and ends), the pass-rate band and curriculum, guard-rails that fire."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from trl import GRPOTrainer

from mathtune.errors import UserError
from mathtune.train.grpo_batches import join_groups
from mathtune.train.grpo_config import GuardRailConfig
from mathtune.train.grpo_guard_rails import GuardRails
from mathtune.train.grpo_pass_rate import CurriculumRefresh, band_or_raise, pass_rates
from mathtune.train.grpo_pool import PoolSampler, PromptPool, histogram, in_band, next_band
from mathtune.train.grpo_trainer import MathtuneGRPOTrainer

G = 4  # completions per prompt in these tests


def fake_batch(trainer, inputs):
    """What TRL's _generate_and_score_completions returns, for rows that say whether their group has a spread.

    Completion and prompt widths change from call to call, as they do between generation rounds."""
    calls = trainer.calls = getattr(trainer, "calls", 0) + 1
    n = len(inputs)
    rewards = [float(row["spread"] and j % 2) for j, row in enumerate(inputs)]
    trainer._last_rewards = torch.tensor(rewards).unsqueeze(1)
    width, prompt_width = 2 + calls, 1 + calls % 2
    completion_mask = torch.ones(n, width, dtype=torch.long)
    return {
        "prompt_ids": torch.tensor([[row["id"]] * prompt_width for row in inputs]),
        "prompt_mask": torch.ones(n, prompt_width, dtype=torch.long),
        "completion_ids": torch.full((n, width), 7),
        "completion_mask": completion_mask,
        "advantages": torch.tensor(rewards) - 0.5,
        "num_items_in_batch": completion_mask.sum(),
    }


def dynamic_trainer(monkeypatch, spread: list[bool], tries: int) -> MathtuneGRPOTrainer:
    """The subclass around a stand-in for TRL's generation (no model): prompt i has a reward spread iff spread[i]."""
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", fake_batch)
    trainer = MathtuneGRPOTrainer.__new__(MathtuneGRPOTrainer)  # the loop under test needs no model or TRL init
    trainer.dynamic_tries, trainer.num_generations, trainer.spread_on = tries, G, None
    trainer.model = torch.nn.Linear(1, 1)  # in training mode
    trainer.reward_weights = torch.tensor([1.0])
    trainer.train_dataset = [{"id": i, "spread": s} for i, s in enumerate(spread)]
    trainer.refill_pool = PromptPool(len(spread), seed=0)
    trainer._metrics = {"train": defaultdict(list)}
    trainer._tokenizer = SimpleNamespace(pad_token_id=0)
    trainer.pad_to_multiple_of = None
    trainer.dynamic_stats = []
    return trainer


def first_batch(trainer, ids: list[int]) -> list[dict]:
    return [trainer.train_dataset[i] for i in ids for _ in range(G)]


def test_dynamic_sampling_refills_the_batch_with_groups_that_have_a_spread(monkeypatch):
    spread = [i % 2 == 0 for i in range(40)]  # every other prompt teaches something
    trainer = dynamic_trainer(monkeypatch, spread, tries=10)
    out = trainer._generate_and_score_completions(first_batch(trainer, [0, 1, 3, 5]))  # 1 of 4 groups has a spread
    assert out["prompt_ids"].shape[0] == out["completion_ids"].shape[0] == 4 * G
    groups = out["prompt_ids"][:, -1].view(4, G)
    assert all(len(set(g.tolist())) == 1 for g in groups)  # groups stay whole
    assert all(spread[int(g[0])] for g in groups)  # and every one of them has a spread
    stats = trainer.dynamic_stats[-1]
    assert stats["tries"] >= 2 and stats["filled"] == 1.0 and stats["dropped"] >= 3
    assert trainer._metrics["train"]["dynamic_sampling/dropped_share"][-1] == stats["dropped"] / stats["groups_drawn"]
    # re-padded: prompts on the left, completions on the right; the loss-token count is of the joined batch
    assert out["prompt_mask"].shape == out["prompt_ids"].shape and out["completion_mask"].shape == out["completion_ids"].shape
    assert int(out["num_items_in_batch"]) == int(out["completion_mask"].sum())


def test_dynamic_sampling_never_loops_forever(monkeypatch):
    trainer = dynamic_trainer(monkeypatch, [False] * 12, tries=3)  # no prompt ever has a spread
    out = trainer._generate_and_score_completions(first_batch(trainer, [0, 1, 2, 3]))
    assert trainer.calls == 3  # max_tries generation rounds, then it stops
    assert out["advantages"].shape[0] == 4 * G  # still a full batch: all-equal groups fill it
    assert trainer.dynamic_stats[-1] == {"tries": 3, "groups_drawn": 12, "dropped": 12, "filled": 0.0}


def test_dynamic_sampling_judges_the_outcome_not_a_graded_side_reward(monkeypatch):
    def with_side_reward(trainer, inputs):
        out = fake_batch(trainer, inputs)  # column 0: the outcome (a spread only where the row says so)
        side = torch.arange(len(inputs), dtype=torch.float).unsqueeze(1) / 10  # differs between any two completions
        trainer._last_rewards = torch.cat([trainer._last_rewards, side], dim=1)
        return out

    spread = [i % 2 == 0 for i in range(40)]
    for spread_on, dropped in ((None, 0), ([0], 3)):  # the total keeps every group; the outcome drops the 3 flat ones
        trainer = dynamic_trainer(monkeypatch, spread, tries=10)
        monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", with_side_reward)
        trainer.reward_weights, trainer.spread_on = torch.tensor([1.0, 0.2]), spread_on
        trainer._generate_and_score_completions(first_batch(trainer, [0, 1, 3, 5]))
        assert trainer.dynamic_stats[-1]["dropped"] == dropped and trainer.dynamic_stats[-1]["filled"] == 1.0


def test_dynamic_sampling_spread_of_defaults_to_accuracy_and_names_unknown_rewards():
    from mathtune.config import load_recipe
    from mathtune.train.grpo import spread_columns

    recipe = load_recipe("gsm8k_grpo")  # rewards: accuracy, format, repetition
    assert spread_columns(recipe) == [0]
    assert spread_columns(load_recipe("gsm8k_grpo", ["grpo.dynamic_sampling.spread_of=[format, repetition]"])) == [1, 2]
    no_accuracy = recipe.grpo.model_copy(update={"rewards": recipe.grpo.rewards[1:]})
    assert spread_columns(recipe.model_copy(update={"grpo": no_accuracy})) is None  # the weighted total
    with pytest.raises(UserError, match=r"spread_of: 'acuracy' is not one of grpo.rewards \(accuracy, format"):
        load_recipe("gsm8k_grpo", ["grpo.dynamic_sampling.spread_of=[acuracy]"])  # at load, before any work
    with pytest.raises(UserError, match=r"grpo.dynamic_sampling.spread_of: empty"):
        load_recipe("gsm8k_grpo", ["grpo.dynamic_sampling.spread_of=[]"])


def test_dynamic_sampling_off_and_at_evaluation_is_plain_trl(monkeypatch):
    trainer = dynamic_trainer(monkeypatch, [False] * 8, tries=0)
    trainer._generate_and_score_completions(first_batch(trainer, [0, 1]))
    trainer.dynamic_tries = 3
    trainer.model.eval()
    trainer._generate_and_score_completions(first_batch(trainer, [0, 1]))
    assert trainer.calls == 2 and trainer.dynamic_stats == []


def test_join_groups_repads_each_side():
    a = {"prompt_ids": torch.tensor([[5, 6]] * 2), "prompt_mask": torch.ones(2, 2, dtype=torch.long),
         "completion_ids": torch.tensor([[1]] * 2), "completion_mask": torch.ones(2, 1, dtype=torch.long),
         "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(2)}
    b = {"prompt_ids": torch.tensor([[9]] * 2), "prompt_mask": torch.ones(2, 1, dtype=torch.long),
         "completion_ids": torch.tensor([[2, 3, 4]] * 2), "completion_mask": torch.ones(2, 3, dtype=torch.long),
         "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(6)}
    out = join_groups([(a, 0), (b, 0)], group_size=2, pad_id=0)
    assert out["prompt_ids"].tolist() == [[5, 6], [5, 6], [0, 9], [0, 9]]
    assert out["prompt_mask"].tolist() == [[1, 1], [1, 1], [0, 1], [0, 1]]
    assert out["completion_ids"].tolist() == [[1, 0, 0], [1, 0, 0], [2, 3, 4], [2, 3, 4]]
    assert out["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5] and int(out["num_items_in_batch"]) == 8
    with pytest.raises(ValueError, match="pixel_values"):
        join_groups([({**a, "pixel_values": torch.zeros(2, 3)}, 0)], group_size=2, pad_id=0)


def test_pass_rate_band_filter():
    rates = [0.0, 0.125, 0.5, 1.0, None, 0.9]
    assert in_band(rates, (0.1, 0.9)) == [1, 2, 5]
    assert in_band(rates, (0.0, 0.0)) == [0]
    assert band_or_raise(rates, (0.1, 0.9), need=3) == [1, 2, 5]
    with pytest.raises(UserError, match=r"grpo.pass_rate.band: \[0.1, 0.9\] keeps 3 of 5 judged prompts, fewer than the 4"):
        band_or_raise(rates, (0.1, 0.9), need=4)
    lines = histogram(rates, bins=4, band=(0.1, 0.9))
    assert lines[0] == "pass rates of 5 prompts (1 unjudged)" and lines[-1] == "  in band [0.1, 0.9]: 3 of 6"
    assert [line.split()[:3] for line in lines[1:5]] == [
        ["[0,", "0.25)", "2"], ["[0.25,", "0.5)", "0"], ["[0.5,", "0.75)", "1"], ["[0.75,", "1]", "2"]]


def test_band_in_the_recipe_is_checked():
    from mathtune.train.grpo_config import PassRateConfig

    with pytest.raises(ValueError, match=r"grpo.pass_rate.band: expected \[lo, hi\]"):
        PassRateConfig(enabled=True, band=(0.9, 0.1))


def test_curriculum_update_moves_the_band_and_the_pool():
    assert next_band((0.1, 0.9), -0.2) == (0.0, 0.7) and next_band((0.3, 0.6), 0.5) == (0.8, 1.0)
    pool = PromptPool(6, seed=0, active=[0, 1, 2])
    estimates = [[0.5, 0.5, 0.5, 0.05, 0.0, 1.0],   # at step 2: prompts 3 and 4 join the shifted band [0.0, 0.6]
                 [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]   # at step 4: nothing left in [0.0, 0.4]
    refresh = CurriculumRefresh(pool, lambda model, step: estimates.pop(0), (0.2, 0.8), shift=-0.2, every=2, need=2)
    state = SimpleNamespace(global_step=1, max_steps=10)
    refresh.on_step_end(None, state, None, model=None)
    assert refresh.history == []  # not a refresh step
    state.global_step = 2
    refresh.on_step_end(None, state, None, model=None)
    assert refresh.band == (0.0, 0.6) and pool.active == [0, 1, 2, 3, 4]
    state.global_step = 4
    refresh.on_step_end(None, state, None, model=None)
    assert pool.active == [0, 1, 2, 3, 4]  # too few in the band: the previous pool is kept, with a warning
    assert refresh.history[-1]["kept_previous"] and "fewer than the 2" in refresh.warnings[0]


def test_pool_sampler_draws_whole_groups_from_the_current_pool():
    pool = PromptPool(10, seed=3, active=[0, 1, 2, 3])
    sampler = PoolSampler(pool, group_size=2, prompts_per_batch=2, repeat_count=1)
    order = list(sampler)
    assert len(order) == len(sampler) == 2 * 2 * 2
    assert all(order[i] == order[i + 1] for i in range(0, len(order), 2)) and set(order) <= {0, 1, 2, 3}
    pool.set_active([7, 8])
    assert set(sampler) == {7, 8}
    assert len(set(pool.draw(2))) == 2  # distinct within a draw while the pool is big enough


def test_pass_rates_are_cached_in_the_run_folder(tmp_path, monkeypatch):
    import mathtune.train.grpo_pass_rate as module

    calls = []

    def fake_scores(model, tokenizer, rows, k, sampling):
        calls.append(len(rows))
        return [[1.0, 0.0] * (k // 2) for _ in rows]

    monkeypatch.setattr(module, "sample_scores", fake_scores)
    rows = [{"prompt": "1 + 1 =", "answer": "2"}, {"prompt": "2 + 2 =", "answer": "4"}]
    sampling = {"max_new_tokens": 8, "temperature": 0.7, "top_p": 1.0, "seed": 0, "batch_size": 4}
    path = tmp_path / "pass_rates" / "step-00000.json"
    assert pass_rates(None, None, rows, 4, sampling, path) == [0.5, 0.5]
    assert pass_rates(None, None, rows, 4, sampling, path) == [0.5, 0.5] and calls == [2]  # read back
    pass_rates(None, None, rows, 4, {**sampling, "temperature": 1.0}, path)
    assert calls == [2, 2]  # other settings: sampled again


def test_pass_rate_file_names_each_prompts_question(tmp_path, monkeypatch):
    import json

    import mathtune.train.grpo_pass_rate as module
    from mathtune.config import FormatConfig
    from mathtune.train.grpo import to_grpo_rows

    monkeypatch.setattr(module, "sample_scores", lambda model, tok, rows, k, sampling: [[1.0, 0.0] for _ in rows])
    source = [{"question": "6 - 9 =", "answer": "-3", "meta": {"task": "chain_sum"}}]
    rows = to_grpo_rows(source, FormatConfig(template="instruction"), None)
    assert rows[0]["question"] == "6 - 9 =" and "6 - 9 =" in rows[0]["prompt"] and rows[0]["answer"] == "-3"
    path = tmp_path / "step-00000.json"
    pass_rates(None, None, rows, 2, {"max_new_tokens": 8}, path)
    assert json.loads(path.read_text())["prompts"][0]["question"] == "6 - 9 =", "which prompt a rate belongs to"


# --- guard-rails on synthetic logs -------------------------------------------------------------------------------
def feed(guard: GuardRails, rows: list[dict]) -> SimpleNamespace:
    state, control = SimpleNamespace(global_step=0, log_history=[]), SimpleNamespace(should_training_stop=False)
    for step, logs in enumerate(rows, start=1):
        state.global_step = step
        guard.on_log(None, state, control, logs={"reward": 0.5, "rewards/accuracy/mean": 0.3, **logs})
    return control


HEALTHY = {"completions/clipped_ratio": 0.05, "completions/mean_length": 20.0, "frac_reward_zero_std": 0.5}


def test_no_rail_fires_on_a_healthy_log():
    guard = GuardRails("accuracy", config=GuardRailConfig(action="stop"))
    control = feed(guard, [HEALTHY] * 12)
    for step, acc in [(0, 0.40), (10, 0.52), (20, 0.55)]:
        guard.record_heldout(step, acc)
    assert guard.fired == [] and not control.should_training_stop


def test_accuracy_falling_twice_in_a_row_stops():
    guard = GuardRails("accuracy", config=GuardRailConfig(action="stop"))
    control = SimpleNamespace(should_training_stop=False)
    for step, acc in [(0, 0.40), (10, 0.52), (20, 0.50)]:
        guard.record_heldout(step, acc)
    assert guard.fired == []  # one fall is noise
    guard.record_heldout(30, 0.46)
    guard.on_step_end(None, None, control)
    assert control.should_training_stop and guard.fired[0]["rail"] == "accuracy_drops"
    assert guard.stop_reason.startswith("STOP step 30: held-out accuracy fell 2 evaluations in a row (52.0% -> 50.0% -> 46.0%)")


def test_clipped_ratio_running_away_fires():
    guard = GuardRails("accuracy", config=GuardRailConfig(action="stop", window=3))
    control = feed(guard, [HEALTHY, HEALTHY] + [{**HEALTHY, "completions/clipped_ratio": 0.7}] * 3)
    assert [f["rail"] for f in guard.fired] == ["max_clipped"] and guard.fired[0]["step"] == 5
    assert control.should_training_stop and "70% of completions were cut" in guard.stop_reason


def test_completion_length_running_away_warns():
    guard = GuardRails("accuracy", config=GuardRailConfig(window=3))  # action: warn
    lengths = [20, 22, 21, 30, 45, 60]
    control = feed(guard, [{**HEALTHY, "completions/mean_length": float(n)} for n in lengths])
    assert [f["rail"] for f in guard.fired] == ["length_growth"] and not control.should_training_stop
    assert guard.warnings[0].startswith("WARNING step 6: mean completion length grew 2.1x (21 -> 45 tokens")


def test_signal_share_staying_near_zero_fires():
    guard = GuardRails("accuracy", config=GuardRailConfig(action="stop", window=4, min_signal=0.05))
    rows = [HEALTHY] + [{**HEALTHY, "frac_reward_zero_std": 1.0}] * 3
    control = feed(guard, rows)
    assert guard.fired == []  # 3 steps without signal, the window is 4
    control = feed(guard, [{**HEALTHY, "frac_reward_zero_std": 0.97}])
    assert [f["rail"] for f in guard.fired] == ["min_signal"] and control.should_training_stop


def test_a_rail_set_to_null_is_off():
    guard = GuardRails("accuracy", config=GuardRailConfig(action="stop", window=3, max_clipped=None))
    control = feed(guard, [{**HEALTHY, "completions/clipped_ratio": 1.0}] * 5)
    assert guard.fired == [] and not control.should_training_stop


def test_mathtune_data_prints_a_pass_rate_histogram(tmp_path):
    import json

    from typer.testing import CliRunner

    from mathtune.cli import app

    path = tmp_path / "step-00000.json"
    rates = [0.0, 0.0, 0.25, 0.5, 1.0]
    path.write_text(json.dumps({"settings": {"k": 4}, "prompts": [{"index": i, "pass_rate": r} for i, r in enumerate(rates)]}))
    args = ["data", "tiny/grpo_default", "--tokenizer", "approx", "--set", "data.train.size=20"]
    result = CliRunner().invoke(app, [*args, "--pass-rates", str(path)])
    assert result.exit_code == 0, result.output
    assert "pass rates of 5 prompts" in result.output and "in band [0.1, 0.9]: 2 of 5" in result.output

    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = CliRunner().invoke(app, [*args, "--pass-rates", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "--pass-rates" in bad.output and "expected a pass-rate file" in bad.output
