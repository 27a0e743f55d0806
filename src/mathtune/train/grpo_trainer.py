"""TRL's GRPOTrainer with DAPO dynamic sampling and a prompt pool that a pass-rate band or curriculum can change.

Dynamic sampling (Yu et al. 2025, DAPO): a group whose rewards are all equal has advantages 0 and teaches nothing,
so it is dropped and fresh prompts are generated until the batch is full of groups with a spread, for at most
`max_tries` generation rounds; then all-equal groups fill what is left (no gradient, as in plain GRPO), so a step
always ends. TRL lacks it (its issue #3708), and its hooks do not expose the group rewards to a callback, so this
subclass wraps `_generate_and_score_completions` (one generation batch in, one out) and `_calculate_rewards` (to see
the rewards); everything else, loss types and importance-sampling level included, is TRL's own.
"""

from __future__ import annotations

from trl import GRPOTrainer

from mathtune.train.grpo_batches import group_totals, join_groups
from mathtune.train.grpo_callbacks import spread_flags
from mathtune.train.grpo_pool import PoolSampler, PromptPool


class MathtuneGRPOTrainer(GRPOTrainer):
    """GRPOTrainer plus `dynamic_tries` (0: off), judged on the `spread_on` reward columns (None: the weighted total),
    and an optional shared `prompt_pool` for the training sampler."""

    def __init__(self, *args, dynamic_tries: int = 0, spread_on: list[int] | None = None,
                 prompt_pool: PromptPool | None = None, **kwargs):
        self.prompt_pool = prompt_pool  # before super().__init__: Trainer may build the sampler there
        super().__init__(*args, **kwargs)
        self.dynamic_tries, self.spread_on = dynamic_tries, spread_on
        self.refill_pool = prompt_pool or PromptPool(len(self.train_dataset), seed=self.args.seed + 1)
        self.dynamic_stats: list[dict] = []  # one entry per generation batch: tries, groups drawn and dropped
        self._last_rewards = None
        if dynamic_tries and self.accelerator.num_processes > 1:
            # each process would pick its own groups while generation and reward gathering run in lockstep
            raise ValueError("grpo.dynamic_sampling: supported on one process only (this run has "
                             f"{self.accelerator.num_processes})")

    def _get_train_sampler(self, dataset=None):
        if self.prompt_pool is None:
            return super()._get_train_sampler(dataset)
        return PoolSampler(self.prompt_pool, self.num_generations,
                           self.args.generation_batch_size // self.num_generations,
                           self.num_iterations * self.args.steps_per_generation)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards = rewards  # (completions, reward functions), gathered: what the advantages come from
        return rewards

    def _generate_and_score_completions(self, inputs):
        if not self.dynamic_tries or not self.model.training:
            return super()._generate_and_score_completions(inputs)
        size = self.num_generations
        need = len(inputs) // size
        kept, spare, drawn, tries = [], [], 0, 0
        batch = inputs
        while True:
            out = super()._generate_and_score_completions(batch)
            tries += 1
            flags = spread_flags(group_totals(self._last_rewards, self.reward_weights, self.spread_on), size)
            for g, varied in enumerate(flags):
                (kept if varied else spare).append((out, g))
            drawn += len(flags)
            if len(kept) >= need or tries >= self.dynamic_tries:
                break
            fresh = self.refill_pool.draw(need - len(kept))  # only the missing groups: generation is the cost
            batch = [self.train_dataset[int(i)] for i in fresh for _ in range(size)]
        chosen = kept[:need] + spare[: max(0, need - len(kept))]
        stats = {"tries": tries, "groups_drawn": drawn, "dropped": drawn - len(kept),
                 "filled": min(len(kept), need) / need}
        self.dynamic_stats.append(stats)
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/tries"].append(float(tries))
        metrics["dynamic_sampling/dropped_share"].append(stats["dropped"] / drawn)
        metrics["dynamic_sampling/filled_share"].append(stats["filled"])
        return join_groups(chosen, size, self._tokenizer.pad_token_id, self.pad_to_multiple_of)
