"""The learning signal of GRPO steps and periodic held-out evaluation, as transformers TrainerCallbacks.

TRL already logs per-reward mean/std (`rewards/NAME/mean`), `completions/mean_length` and
`completions/clipped_ratio`. SignalMeter measures `signal_share`, the share of prompt groups whose weighted rewards
(those dynamic sampling judges: `spread_of`) are not all equal (only those carry a learning signal); the
guard-rails (grpo_guards.py) add it to each step's log.

Why not TRL's `frac_reward_zero_std`: it tests the group std with torch.isclose (atol 1e-8), and the float32 std of
identical rewards such as 0.2 x 8 comes out near 1.5e-8, so groups with no signal were counted as having one
(measured: benchmarks/results/grpo_default_report.md, steps 28-30).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from mathtune.train.grpo_batches import group_totals

log = logging.getLogger("mathtune")



def spread_flags(totals: list[float | None], group_size: int, tol: float = 1e-6) -> list[bool]:
    """Per group of `group_size` consecutive completions: do their total rewards differ (None rewards skipped)?

    >>> spread_flags([0.2, 0.2, 1.2, 0.2, None, 1.0], 2)
    [False, True, False]
    """
    flags = []
    for start in range(0, len(totals), group_size):
        group = [t for t in totals[start : start + group_size] if t is not None]
        flags.append(len(group) > 1 and max(group) - min(group) > tol)
    return flags


class SignalMeter:
    """Wraps the reward functions to see each generation batch's rewards and count groups with a reward spread.

    `columns`: the rewards whose spread counts (dynamic sampling's `spread_of`; None: the weighted total). A graded
    side reward such as `repetition` differs between any two completions, so judged on the total the share read
    ~100% while no answer was right; judged on the outcome it says whether GRPO has anything to reinforce.
    """

    def __init__(self, weights: list[float], group_size: int, tol: float = 1e-6, columns: list[int] | None = None):
        self.weights, self.group_size, self.tol, self.columns = weights, group_size, tol, columns
        self._pending: dict[int, list] = {}
        self._shares: list[float] = []

    def wrap(self, index: int, fn):
        """`fn` with its outputs recorded; the name is kept, since TRL logs rewards by function name."""

        def recorded(completions, **columns):
            out = fn(completions, **columns)
            self._pending[index] = list(out)
            if len(self._pending) == len(self.weights):
                self._close()
            return out

        recorded.__name__ = recorded.__qualname__ = fn.__name__
        return recorded

    def _close(self) -> None:
        rows = zip(*(self._pending[i] for i in range(len(self.weights))))
        # like TRL (and dynamic sampling): None rewards are skipped; a completion no reward judged leaves its group
        rewards = torch.tensor([[float("nan") if v is None else float(v) for v in vals] for vals in rows],
                               dtype=torch.float64).reshape(-1, len(self.weights))
        totals = group_totals(rewards, torch.tensor(self.weights, dtype=torch.float64), self.columns)
        self._pending.clear()
        varied = spread_flags(totals, self.group_size, self.tol)
        if varied:
            self._shares.append(sum(varied) / len(varied))

    def take(self) -> float | None:
        """Mean share over the batches since the last call (None when none was scored)."""
        shares, self._shares = self._shares, []
        return sum(shares) / len(shares) if shares else None


class PeriodicEval(TrainerCallback):
    """Every `every` optimizer steps, evaluate the policy on held-out rows with the evaluation harness."""

    def __init__(self, every: int, run_eval):
        self.every = every
        self.run_eval = run_eval  # run_eval(model, step) -> summary; the caller knows rows, format and folders

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.run_eval(model, state.global_step)


def evaluate_at(model, tokenizer, rows: list[dict], fmt, eval_cfg, out_dir: Path, step: int, results: dict) -> dict:
    """Evaluate `model` into `out_dir/step-N` (resumable; a finished one is read back) and record it in `results`."""
    from mathtune.eval.runner import SUMMARY_FILE, evaluate
    from mathtune.runs import read_json

    folder = out_dir / f"step-{step:05d}"
    summary = read_json(folder / SUMMARY_FILE)
    if not summary or summary.get("n") != min(len(rows), eval_cfg.limit or len(rows)):
        was_training = model.training
        model.eval()
        start = time.time()
        summary = evaluate(model, tokenizer, rows, fmt, eval_cfg, folder)
        summary["seconds"] = time.time() - start
        if was_training:
            model.train()
    results[step] = summary
    acc = summary.get("accuracy")
    log.info("held-out eval at step %d: accuracy %s on %d", step, f"{acc:.1%}" if acc is not None else "n/a", summary["n"])
    return summary
