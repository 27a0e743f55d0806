"""Guard-rails and periodic held-out evaluation for GRPO, as transformers TrainerCallbacks.

TRL already logs per-reward mean/std (`rewards/NAME/mean`), `completions/mean_length` and
`completions/clipped_ratio`. SignalMeter measures `signal_share`, the share of prompt groups whose weighted rewards
are not all equal (only those carry a learning signal); GuardRails adds it to each step's log and warns loudly when a
run is learning nothing: accuracy 0 on every step so far, or no group with a reward spread.

Why not TRL's `frac_reward_zero_std`: it tests the group std with torch.isclose (atol 1e-8), and the float32 std of
identical rewards such as 0.2 x 8 comes out near 1.5e-8, so groups with no signal were counted as having one
(measured: benchmarks/results/grpo_default_report.md, steps 28-30).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger("mathtune")

# Keys kept from TRL's logs for the report (plus every rewards/*).
TRACKED = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
           "loss", "kl", "entropy", "learning_rate")
WARN_AFTER_STEPS = 3  # a few steps of zero reward are normal for a hard task; longer is a problem worth a warning


class SignalMeter:
    """Wraps the reward functions to see each generation batch's rewards and count groups with a reward spread."""

    def __init__(self, weights: list[float], group_size: int, tol: float = 1e-6):
        self.weights, self.group_size, self.tol = weights, group_size, tol
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
        # like TRL: None rewards are skipped; a completion no reward could judge is left out of its group
        totals = [None if all(v is None for v in vals) else sum(w * v for w, v in zip(self.weights, vals) if v is not None)
                  for vals in rows]
        self._pending.clear()
        varied = []
        for start in range(0, len(totals), self.group_size):
            group = [t for t in totals[start : start + self.group_size] if t is not None]
            varied.append(len(group) > 1 and max(group) - min(group) > self.tol)
        if varied:
            self._shares.append(sum(varied) / len(varied))

    def take(self) -> float | None:
        """Mean share over the batches since the last call (None when none was scored)."""
        shares, self._shares = self._shares, []
        return sum(shares) / len(shares) if shares else None


class GuardRails(TrainerCallback):
    """Collect the GRPO metrics per step and warn when the accuracy reward or the learning signal stays at 0."""

    def __init__(self, accuracy_name: str | None = "accuracy", meter: SignalMeter | None = None):
        self.accuracy_name = accuracy_name
        self.meter = meter
        self.history: list[dict] = []
        self.warnings: list[str] = []
        self._max_accuracy = 0.0
        self._max_signal = 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:  # the end-of-train summary and eval logs carry no reward
            return
        row = {"step": state.global_step}
        row.update({k: v for k, v in logs.items() if k in TRACKED or k.startswith("rewards/")})
        share = self.meter.take() if self.meter else None
        if share is None and "frac_reward_zero_std" in logs:
            share = 1.0 - float(logs["frac_reward_zero_std"])
        if share is not None:
            row["signal_share"] = share
            self._max_signal = max(self._max_signal, share)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1]["signal_share"] = share  # saved with checkpoints, so a resumed report has it
        acc_key = f"rewards/{self.accuracy_name}/mean"
        if acc_key in logs and logs[acc_key] == logs[acc_key]:  # NaN: no row could be judged this step
            self._max_accuracy = max(self._max_accuracy, float(logs[acc_key]))
        self.history.append(row)
        self._check(acc_key in logs, state.global_step)

    def _check(self, has_accuracy: bool, step: int) -> None:
        if len(self.history) < WARN_AFTER_STEPS:
            return
        if has_accuracy and self._max_accuracy == 0.0:
            self._warn(
                f"step {step}: the accuracy reward has been 0 on every step so far: the model never reaches a right "
                "answer, so GRPO has nothing to reinforce. Use an easier task, more generations, or an SFT adapter first."
            )
        if self._max_signal == 0.0:
            self._warn(
                f"step {step}: every group so far got all-equal rewards (signal share 0): advantages are all 0 and "
                "the policy cannot move. Raise temperature or num_generations, or mix in a graded reward."
            )

    def _warn(self, message: str) -> None:
        line = "WARNING " + message
        log.warning("\n%s\n%s\n%s", "!" * 80, line, "!" * 80)
        if line.split(":", 1)[1] not in {w.split(":", 1)[1] for w in self.warnings}:
            self.warnings.append(line)


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
