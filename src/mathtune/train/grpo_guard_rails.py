"""Guard-rails for GRPO runs: collect each step's metrics, and warn or stop when the run goes wrong.

Rails (thresholds in the recipe's `grpo.guard_rails`, each off with null):
- held-out accuracy fell `accuracy_drops` evaluations in a row (the gain peaked and is being lost);
- `completions/clipped_ratio` averaged at least `max_clipped` over the last `window` steps (answers cut off score 0);
- mean completion length over the last window is `length_growth` times that of the first (rambling, loops);
- the signal share (groups with a reward spread) stayed at or below `min_signal` for `window` steps (nothing learns);
- and, always a warning: the accuracy reward has been 0 on every step so far.
With `action: stop` the first rail that fires ends training after the current step (the adapter is still saved and
evaluated); with `warn` each rail warns once. A fired rail is kept in metrics.json and the report.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from mathtune.train.grpo_config import GuardRailConfig

log = logging.getLogger("mathtune")

# Keys kept from TRL's logs for the report (plus every rewards/* and dynamic_sampling/*).
TRACKED = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
           "loss", "kl", "entropy", "learning_rate", "clip_ratio/region_mean")
KEPT_PREFIXES = ("rewards/", "dynamic_sampling/")
WARN_AFTER_STEPS = 3  # a few steps of zero reward are normal for a hard task; longer is a problem worth a warning


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def falls_in_a_row(accuracies: list[float]) -> int:
    """How many evaluations in a row, counted back from the last, had a lower accuracy than the one before.

    >>> falls_in_a_row([0.40, 0.52, 0.50, 0.46])
    2
    >>> falls_in_a_row([0.40, 0.52, 0.50, 0.50])
    0
    """
    count = 0
    for before, after in zip(reversed(accuracies[:-1]), reversed(accuracies[1:])):
        if after >= before:
            break
        count += 1
    return count


class GuardRails(TrainerCallback):
    """Collect the GRPO metrics per step; warn or stop when a rail of `config` fires."""

    def __init__(self, accuracy_name: str | None = "accuracy", meter=None, config: GuardRailConfig | None = None):
        self.accuracy_name, self.meter = accuracy_name, meter
        self.config = config or GuardRailConfig()
        self.history: list[dict] = []
        self.heldout: list[tuple[int, float]] = []
        self.warnings: list[str] = []
        self.fired: list[dict] = []  # {rail, step, message}
        self.stop_reason: str | None = None
        self._max_accuracy = 0.0

    # --- hooks -------------------------------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:  # the end-of-train summary and eval logs carry no reward
            return
        row = {"step": state.global_step}
        row.update({k: v for k, v in logs.items() if k in TRACKED or k.startswith(KEPT_PREFIXES)})
        share = self.meter.take() if self.meter else None
        if share is None and "frac_reward_zero_std" in logs:
            share = 1.0 - float(logs["frac_reward_zero_std"])
        if share is not None:
            row["signal_share"] = share
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1]["signal_share"] = share  # saved with checkpoints, so a resumed report has it
        acc_key = f"rewards/{self.accuracy_name}/mean"
        if acc_key in logs and logs[acc_key] == logs[acc_key]:  # NaN: no row could be judged this step
            self._max_accuracy = max(self._max_accuracy, float(logs[acc_key]))
        self.history.append(row)
        self._check_steps(acc_key in logs, state.global_step)
        self._act(control)

    def on_step_end(self, args, state, control, **kwargs):
        self._act(control)  # a held-out evaluation in this step (PeriodicEval runs before) may have fired a rail

    def record_heldout(self, step: int, accuracy: float | None, final: bool = False) -> None:
        """A held-out evaluation's accuracy (called by the evaluation hook); checks the accuracy-drop rail.

        After training (`final`) there is nothing left to stop, so the rail only warns."""
        if accuracy is None:
            return
        self.heldout.append((step, accuracy))
        drops = self.config.accuracy_drops
        accs = [a for _, a in sorted(self.heldout)]
        if drops and falls_in_a_row(accs) >= drops:
            shown = " -> ".join(f"{100 * a:.1f}%" for a in accs[-(drops + 1):])
            self._fire("accuracy_drops", step, f"held-out accuracy fell {drops} evaluations in a row ({shown}): the "
                       "policy is losing what it gained. Lower trainer.learning_rate, or keep the adapter of the best "
                       "evaluation (RUN/evals/step-N)", always_warn=final)

    # --- rails -------------------------------------------------------------------------------------------------
    def _series(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.history if key in r and r[key] is not None and r[key] == r[key]]

    def _check_steps(self, has_accuracy: bool, step: int) -> None:
        cfg, w = self.config, self.config.window
        if has_accuracy and len(self.history) >= WARN_AFTER_STEPS and self._max_accuracy == 0.0:
            self._fire("zero_accuracy", step, "the accuracy reward has been 0 on every step so far: the model never "
                       "reaches a right answer, so GRPO has nothing to reinforce. Use an easier task, more "
                       "generations, or an SFT adapter first", always_warn=True)
        clipped = self._series("completions/clipped_ratio")
        if cfg.max_clipped is not None and len(clipped) >= w and _mean(clipped[-w:]) >= cfg.max_clipped:
            self._fire("max_clipped", step, f"{100 * _mean(clipped[-w:]):.0f}% of completions were cut at "
                       f"max_completion_length over the last {w} steps (limit {100 * cfg.max_clipped:.0f}%): cut "
                       "answers score 0. Raise trainer.max_completion_length or add the overlong reward")
        lengths = self._series("completions/mean_length")
        if cfg.length_growth is not None and len(lengths) >= 2 * w:
            first, last = _mean(lengths[:w]), _mean(lengths[-w:])
            if first > 0 and last / first >= cfg.length_growth:
                self._fire("length_growth", step, f"mean completion length grew {last / first:.1f}x ({first:.0f} -> "
                           f"{last:.0f} tokens, limit {cfg.length_growth:g}x): completions are running away (loops, "
                           "rambling). Add the repetition or overlong reward, or lower trainer.learning_rate")
        signal = self._series("signal_share")
        if cfg.min_signal is not None and len(signal) >= w and max(signal[-w:]) <= cfg.min_signal:
            self._fire("min_signal", step, f"signal share at most {cfg.min_signal:g} for the last {w} steps: nearly "
                       "every group got all-equal rewards, so advantages are 0 and the policy cannot move. Turn on "
                       "grpo.dynamic_sampling or grpo.pass_rate, raise temperature or num_generations")

    def _fire(self, rail: str, step: int, message: str, always_warn: bool = False) -> None:
        if any(f["rail"] == rail for f in self.fired):
            return  # each rail speaks once
        stop = self.config.action == "stop" and not always_warn
        line = f"{'STOP' if stop else 'WARNING'} step {step}: {message}"
        if stop:
            line += " (grpo.guard_rails.action: stop)"
            self.stop_reason = self.stop_reason or line
        log.warning("\n%s\n%s\n%s", "!" * 80, line, "!" * 80)
        self.warnings.append(line)
        self.fired.append({"rail": rail, "step": step, "message": line})

    def _act(self, control) -> None:
        if self.stop_reason and control is not None:
            control.should_training_stop = True
