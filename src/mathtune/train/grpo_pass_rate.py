"""Pass rates of GRPO training prompts: k samples each from the policy, graded like the accuracy reward, cached.

Sampling follows TRL's (temperature, top_p, max_completion_length, no stop strings), so a rate says what the
groups of a training step would see. The rates are written to `RUN/pass_rates/step-NNNNN.json` (step 0: the
starting model); a run that is resumed, or run again into the same folder with the same settings, reads them back.
`mathtune data RECIPE --pass-rates FILE` prints their histogram.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from mathtune.runs import atomic_write_json, read_json
from mathtune.train.grpo_pool import PromptPool, in_band, next_band

log = logging.getLogger("mathtune")
PASS_RATES_DIR = "pass_rates"


def prompt_key(prompt: str) -> str:
    """A short, stable key of a prompt's text (the cache is matched by prompt, not by position)."""
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:16]


def sample_scores(model, tokenizer, rows: list[dict], k: int, sampling: dict[str, Any]) -> list[list[float | None]]:
    """k completions per row with mathtune's batched generator, each scored by the accuracy reward's judge."""
    from mathtune.eval.generate import GenerationConfig, make_generator
    from mathtune.rewards import correctness

    config = GenerationConfig(max_new_tokens=sampling["max_new_tokens"], temperature=sampling["temperature"],
                              top_p=sampling["top_p"], n=k, seed=sampling["seed"], batch_size=sampling["batch_size"])
    was_training = model.training
    model.eval()
    try:
        completions = make_generator("hf", model, tokenizer).generate([r["prompt"] for r in rows], config)
    finally:
        if was_training:
            model.train()
    return [[correctness(c.text, r.get("answer"), r.get("task"), r.get("entry")) for c in row_completions]
            for r, row_completions in zip(rows, completions)]


def rate(scores: list[float | None]) -> float | None:
    """Mean score of the judged samples (reasoning-gym scores may be partial); None when none could be judged."""
    judged = [s for s in scores if s is not None]
    return sum(judged) / len(judged) if judged else None


def pass_rates(model, tokenizer, rows: list[dict], k: int, sampling: dict[str, Any], path: Path) -> list[float | None]:
    """Each row's pass rate, read from `path` when it holds these prompts and settings, else sampled and saved."""
    settings = {"k": k, **sampling}
    keys = [prompt_key(r["prompt"]) for r in rows]
    cached = read_json(path)
    if cached and cached.get("settings") == settings and [p["key"] for p in cached["prompts"]] == keys:
        log.info("pass rates: read %d from %s", len(keys), path)
        return [p["pass_rate"] for p in cached["prompts"]]
    log.info("pass rates: sampling %d x %d completions", len(rows), k)
    scores = sample_scores(model, tokenizer, rows, k, sampling)
    prompts = [{"index": i, "key": key, "question": r.get("question", ""), "scores": s, "pass_rate": rate(s)}
               for i, (key, r, s) in enumerate(zip(keys, rows, scores))]
    atomic_write_json(path, {"settings": settings, "prompts": prompts})
    return [p["pass_rate"] for p in prompts]


def read_pass_rates(path: Path) -> list[float | None]:
    """The pass rates in a cached file (ValueError when it is not one)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise ValueError("expected a pass-rate file of `mathtune grpo` (RUN/pass_rates/step-N.json)")
    return [p.get("pass_rate") for p in data["prompts"]]


def band_or_raise(rates: list[float | None], band: tuple[float, float], need: int) -> list[int]:
    """The prompts inside the band; a band that leaves fewer than one generation batch is a user error."""
    from mathtune.errors import UserError

    kept = in_band(rates, band)
    if len(kept) < need:
        judged = sum(r is not None for r in rates)
        raise UserError(
            f"grpo.pass_rate.band: [{band[0]:g}, {band[1]:g}] keeps {len(kept)} of {judged} judged prompts, fewer than "
            f"the {need} one generation batch needs; widen the band or raise grpo.pass_rate.pool_size"
        )
    return kept


class CurriculumRefresh(TrainerCallback):
    """Every `every` steps: re-estimate the pool's pass rates with the current policy, move the band, re-filter."""

    def __init__(self, pool: PromptPool, estimate, band: tuple[float, float], shift: float, every: int, need: int):
        self.pool, self.estimate = pool, estimate  # estimate(model, step) -> pass rates of the whole candidate pool
        self.band, self.shift, self.every, self.need = band, shift, every, need
        self.history: list[dict] = []  # one entry per refresh, for the report
        self.warnings: list[str] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if not self.every or step % self.every or step >= state.max_steps:
            return
        self.refresh(model, step)

    def refresh(self, model, step: int) -> None:
        """One curriculum update (kept apart from the callback hook so it can be tested without a trainer)."""
        rates = self.estimate(model, step)
        band = next_band(self.band, self.shift)
        kept = in_band(rates, band)
        entry = {"step": step, "band": list(band), "kept": len(kept), "judged": sum(r is not None for r in rates)}
        if len(kept) < self.need:
            # keep training on the previous pool rather than stop: the band moves again at the next refresh
            message = (f"WARNING step {step}: curriculum band [{band[0]:g}, {band[1]:g}] keeps {len(kept)} prompts, "
                       f"fewer than the {self.need} of one generation batch; the previous pool is kept")
            log.warning(message)
            self.warnings.append(message)
            entry["kept_previous"] = True
        else:
            self.pool.set_active(kept)
        self.band = band
        self.history.append(entry)
        log.info("curriculum at step %d: band [%g, %g], %d prompts in play", step, band[0], band[1],
                 len(self.pool.active))


def setup_pool(cfg, rows: list[dict], model, tokenizer, args, run_dir: Path):
    """(pool, curriculum callback or None): the starting model's pass rates on `rows`, filtered to cfg.band.

    `cfg` is the recipe's `grpo.pass_rate`; `args` the trl.GRPOConfig, whose sampling settings the estimate uses.
    """
    sampling = {"max_new_tokens": args.max_completion_length, "temperature": args.temperature,
                "top_p": args.top_p, "seed": args.seed, "batch_size": cfg.batch_size}
    need = args.generation_batch_size // args.num_generations

    def estimate(policy, step: int) -> list[float | None]:
        return pass_rates(policy, tokenizer, rows, cfg.k, sampling, run_dir / PASS_RATES_DIR / f"step-{step:05d}.json")

    band = tuple(cfg.band)
    kept = band_or_raise(estimate(model, 0), band, need)
    log.info("pass-rate band [%g, %g]: %d of %d prompts kept", band[0], band[1], len(kept), len(rows))
    pool = PromptPool(len(rows), seed=args.seed, active=kept)
    curriculum = cfg.curriculum
    refresh = (CurriculumRefresh(pool, estimate, band, curriculum.shift, curriculum.every, need)
               if curriculum.every else None)
    return pool, refresh
