"""GRPO with verifiable rewards on TRL's GRPOTrainer: `mathtune grpo RECIPE`.

Linear: seed -> rewards -> data -> GRPOConfig -> model (+ optional SFT adapter) -> held-out eval at step 0 ->
train (periodic held-out evals, guard-rails) -> save adapter -> final eval -> metrics.json + report.md + grpo.png.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mathtune.config import Recipe
from mathtune.errors import UserError
from mathtune.runs import (
    CHECKPOINTS_DIR, TRAIN_LOG, atomic_write_json, mean_train_loss, record_stage, save_trained_adapter, stage_attempt,
    stage_seconds,
)
from mathtune.train.grpo_config import GRPO_DEFAULTS, check_grpo_trainer

log = logging.getLogger("mathtune")

def import_reward_modules(modules: list[str]) -> None:
    """Import user files (`path/to/file.py`) or modules so their `@REWARDS.register` decorators run."""
    for i, item in enumerate(modules):
        where = f"grpo.reward_modules[{i}]"
        if item.endswith(".py"):
            path = Path(item).expanduser()
            if not path.is_file():
                raise UserError(f"{where}: file {item!r} not found")
            spec = importlib.util.spec_from_file_location(f"mathtune_user_rewards_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(item)
            except ImportError as exc:
                raise UserError(f"{where}: cannot import {item!r} ({exc})") from None


def build_rewards(recipe: Recipe) -> tuple[list, list[float]]:
    """The recipe's reward functions (factories called with their options) and their weights."""
    from mathtune.registry import UnknownNameError
    from mathtune.rewards import REWARDS, named

    import_reward_modules(recipe.grpo.reward_modules)
    if not recipe.grpo.rewards:
        raise UserError("grpo.rewards: empty; list at least one reward, e.g. [{name: accuracy}]")
    funcs, weights = [], []
    for i, spec in enumerate(recipe.grpo.rewards):
        try:
            factory = REWARDS.get(spec.name)
        except UnknownNameError as exc:
            raise UserError(f"grpo.rewards[{i}].name: {exc}") from None
        try:
            # TRL logs each reward under its function's name: use the recipe's, whatever the user's function is called
            funcs.append(named(spec.name, factory(**spec.options)))
        except (TypeError, ValueError) as exc:
            raise UserError(f"grpo.rewards[{i}] ({spec.name}).options: {exc}") from None
        weights.append(spec.weight)
    return funcs, weights


def spread_columns(recipe: Recipe) -> list[int] | None:
    """Positions in grpo.rewards of the rewards whose spread dynamic sampling judges (None: the weighted total);
    the names were checked against grpo.rewards when the recipe was validated."""
    names, chosen = [r.name for r in recipe.grpo.rewards], recipe.grpo.dynamic_sampling.spread_of
    if chosen is None:
        return [names.index("accuracy")] if "accuracy" in names else None
    return [i for i, name in enumerate(names) if name in chosen]


def check_gold(recipe: Recipe, rows: list[dict]) -> None:
    """A correctness reward on rows without gold answers would be None everywhere: stop before training."""
    from mathtune.rewards import needs_gold

    judged = [r.name for r in recipe.grpo.rewards if needs_gold(r.name)]
    if judged and not any(r.get("answer") or (r.get("meta") or {}).get("entry") for r in rows):
        specs = recipe.data.train if isinstance(recipe.data.train, list) else [recipe.data.train or {}]
        sources = ", ".join(repr(spec.get("source")) for spec in specs)
        raise UserError(
            f"grpo.rewards: {judged[0]!r} needs gold answers, but data.train (source {sources}) has none; "
            "use a source with answers or drop that reward"
        )


def to_grpo_rows(rows: list[dict], fmt, tokenizer) -> list[dict]:
    """Rows -> TRL prompts plus the columns rewards read (the reasoning-gym entry as JSON text for `score_answer`)."""
    from mathtune.data.formats import build_prompt

    out = []
    for r in rows:
        meta = r.get("meta") or {}
        out.append({
            "prompt": build_prompt(r["question"], fmt, tokenizer),
            "question": r["question"],  # read by the pass-rate cache and reports; rewards ignore it
            "answer": r.get("answer", ""),
            "task": meta.get("task", ""),
            "entry": json.dumps(meta["entry"]) if "entry" in meta else "",
        })
    return out


def trainer_args(recipe: Recipe, output_dir: Path, weights: list[float]) -> dict[str, Any]:
    """GRPOConfig's arguments: mathtune's defaults, the recipe's seed and `trainer:` block, checked (no torch, no GPU)."""
    try:  # checked when the recipe loads (train/grpo_config.py); again here for recipes built in code
        check_grpo_trainer(recipe.trainer)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return {**GRPO_DEFAULTS, "seed": recipe.seed, "output_dir": str(output_dir), "reward_weights": weights,
            **recipe.trainer}


def grpo_config(recipe: Recipe, output_dir: Path, weights: list[float]):
    """trl.GRPOConfig for this machine (CPU: no bf16, no checkpointing, no vLLM); bad values in one line."""
    import torch
    from trl import GRPOConfig

    args = trainer_args(recipe, output_dir, weights)
    from mathtune.trackers import check_report_to

    check_report_to(args)
    if not torch.cuda.is_available():
        # bf16 matmul is ~15x slower than fp32 on CPUs without native bf16 (benchmarks/results/matmul_dtype.md)
        cpu = {"use_cpu": True, "bf16": False, "gradient_checkpointing": False}
        args.update({k: v for k, v in cpu.items() if k not in recipe.trainer})  # the recipe's own choice still wins
        if args.get("use_vllm"):
            raise UserError("trainer.use_vllm: vLLM needs a CUDA GPU; set it false on CPU (transformers generates)")
    try:
        return GRPOConfig(**args)
    except (ValueError, TypeError) as exc:
        raise UserError(f"trainer: {str(exc).splitlines()[0]}") from None


def policy_model(recipe: Recipe, model_path: str):
    """The base model, with the starting SFT adapter loaded trainable when `grpo.adapter` names one."""
    from mathtune.models import load_model

    model = load_model(model_path, recipe.quantization, recurrent=recipe.recurrent)
    if recipe.grpo.adapter is None:
        return model, None
    from peft import PeftModel

    path = Path(recipe.grpo.adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise UserError(f"grpo.adapter: {str(path)!r} has no adapter_config.json (expected RUN/adapter of `mathtune train`)")
    return PeftModel.from_pretrained(model, str(path), is_trainable=True), path


def run_grpo(recipe: Recipe, run_dir: Path, home: Path, resume: bool = False) -> dict:
    """Train with GRPO into `run_dir` (adapter, held-out evals, metrics.json, report.md); return the metrics."""
    from datasets import Dataset
    from transformers import set_seed

    from mathtune import distributed
    from mathtune.models import load_tokenizer, lora_config, resolve_recipe_model
    from mathtune.data.load import load_splits
    from mathtune.trackers import log_summary, point_trackers
    from mathtune.train.grpo_callbacks import PeriodicEval, SignalMeter, evaluate_at
    from mathtune.train.grpo_guard_rails import GuardRails
    from mathtune.train.grpo_report import write_grpo_report
    from mathtune.train.grpo_trainer import MathtuneGRPOTrainer
    from mathtune.train.sft import last_complete_checkpoint

    set_seed(recipe.seed)
    if recipe.data.train is None:
        raise UserError("data.train: missing (GRPO needs training prompts)")
    funcs, weights = build_rewards(recipe)
    args = grpo_config(recipe, run_dir / CHECKPOINTS_DIR, weights)  # before loading anything: bad config fails fast
    spread_on = spread_columns(recipe)
    with distributed.main_process_first():  # under accelerate launch rank 0 converts the model and fills caches
        model_path = resolve_recipe_model(recipe, home)
        tokenizer = load_tokenizer(model_path)
        splits = load_splits(recipe, tokenizer)  # `tokens` filters count with the model's own tokenizer
    distributed.check_same_data(splits.train, "data.train")
    check_gold(recipe, splits.train)
    log.info("data: %d training prompts, %d held-out rows", len(splits.train), len(splits.eval))
    rows = to_grpo_rows(splits.train, recipe.format, tokenizer)
    model, adapter_in = policy_model(recipe, model_path)
    record_stage(run_dir, "grpo", recipe)  # before any sampling or evaluation: a resume must not change what it used
    pool, curriculum = prompt_pool(recipe, rows, model, tokenizer, args, run_dir)
    if pool is not None:
        rows = pool_rows(recipe, rows)  # the pool's indices are positions in these rows

    eval_cfg = recipe.eval.model_copy(update={"limit": recipe.grpo.eval_limit or recipe.eval.limit})
    evals: dict[int, dict] = {}
    accuracy_name = next((r.name for r in recipe.grpo.rewards if r.name == "accuracy"), None)
    meter = SignalMeter(weights, args.num_generations, columns=spread_on)  # the signal dynamic sampling judges
    guard = GuardRails(accuracy_name, meter, recipe.grpo.guard_rails)

    def run_eval(m, step, final=False):
        # rank 0 alone evaluates (and writes) under accelerate launch; the others wait for it (DDP only: see
        # train/launched.py), so every rank leaves the evaluation at the same point of training
        summary = None
        if distributed.is_main_process():
            summary = evaluate_at(m, tokenizer, splits.eval, recipe.format, eval_cfg, run_dir / "evals", step, evals)
            log_summary(recipe.trainer, recipe.name, run_dir, "heldout", summary, step)
            guard.record_heldout(step, summary.get("accuracy"), final=final)
        distributed.wait_for_everyone()
        return summary

    callbacks = [PeriodicEval(recipe.grpo.eval_every, run_eval), guard] + ([curriculum] if curriculum else [])
    dynamic = recipe.grpo.dynamic_sampling
    try:
        trainer = MathtuneGRPOTrainer(
            model=model,
            reward_funcs=[meter.wrap(i, fn) for i, fn in enumerate(funcs)],
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=None if adapter_in else lora_config(recipe.lora),
            callbacks=callbacks,
            dynamic_tries=dynamic.max_tries if dynamic.enabled else 0,
            spread_on=spread_on,
            prompt_pool=pool,
        )
    except ValueError as exc:
        if str(exc).startswith("grpo."):
            raise UserError(str(exc)) from None
        raise
    point_trackers(trainer, run_dir)
    resume_from = last_complete_checkpoint(run_dir / CHECKPOINTS_DIR) if resume else None
    if resume_from is None:
        run_eval(trainer.model, 0)
    with stage_attempt(run_dir, "grpo", recipe, outputs=[CHECKPOINTS_DIR]):
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = stage_seconds(run_dir, "grpo")  # every attempt's, so a resumed run's time adds up
    adapter_dir = save_trained_adapter(trainer, tokenizer, run_dir)
    run_eval(trainer.model, trainer.state.global_step, final=True)
    if not distributed.is_main_process():  # rank 0 writes the metrics and the report
        return {"evals": {}, "warnings": [], "adapter": str(adapter_dir)}
    _read_back_evals(run_dir / "evals", evals)  # on resume, the evaluations of the interrupted run count too

    history = history_from_log(trainer.state.log_history)  # restored on resume, so it spans the whole run
    metrics = {
        "model": recipe.model,
        "adapter_in": str(adapter_in) if adapter_in else None,
        "adapter": str(adapter_dir),
        "rows": {"train": len(splits.train), "eval": len(splits.eval), "pool": len(pool.active) if pool else None},
        "steps": trainer.state.global_step,
        "seconds": {"train": train_seconds},
        "objective": objective(recipe, args),
        "warnings": guard.warnings + (curriculum.warnings if curriculum else []),
        "guard_rails": {"fired": guard.fired, "stopped": guard.stop_reason},
        "dynamic_sampling": trainer.dynamic_stats,
        "curriculum": curriculum.history if curriculum else [],
        "evals": {str(k): v for k, v in sorted(evals.items())},
        "history": history,
    }
    atomic_write_json(run_dir / TRAIN_LOG, {"seconds": train_seconds, "train_loss": mean_train_loss(
        trainer.state.log_history), "log_history": trainer.state.log_history})
    atomic_write_json(run_dir / "metrics.json", metrics)
    write_grpo_report(run_dir, recipe, metrics, history, evals)
    return metrics


def pool_rows(recipe: Recipe, rows: list[dict]) -> list[dict]:
    """The training prompts whose pass rates are estimated: the first `grpo.pass_rate.pool_size` (None: all)."""
    size = recipe.grpo.pass_rate.pool_size
    return rows[:size] if size else rows


def prompt_pool(recipe: Recipe, rows: list[dict], model, tokenizer, args, run_dir: Path):
    """(PromptPool, curriculum callback) when `grpo.pass_rate` is on, else (None, None)."""
    if not recipe.grpo.pass_rate.enabled:
        return None, None
    from mathtune.train.grpo_pass_rate import setup_pool

    return setup_pool(recipe.grpo.pass_rate, pool_rows(recipe, rows), model, tokenizer, args, run_dir)


def objective(recipe: Recipe, args) -> dict[str, Any]:
    """What the policy was optimised for, as the report states it: TRL's loss settings and mathtune's samplers."""
    dyn, rate = recipe.grpo.dynamic_sampling, recipe.grpo.pass_rate
    cols = spread_columns(recipe)
    return {
        "loss_type": args.loss_type,
        "importance_sampling_level": args.importance_sampling_level,
        "scale_rewards": args.scale_rewards,
        "beta": args.beta,
        "epsilon": [args.epsilon, args.epsilon_high],
        "num_generations": args.num_generations,
        "generation_batch_size": args.generation_batch_size,
        "max_completion_length": args.max_completion_length,
        "temperature": args.temperature,
        "dynamic_sampling": {"enabled": dyn.enabled, "max_tries": dyn.max_tries,
                             "spread_of": [recipe.grpo.rewards[i].name for i in cols] if cols else "weighted total"},
        "pass_rate": {"enabled": rate.enabled, "k": rate.k, "band": list(rate.band),
                      "curriculum": rate.curriculum.model_dump()} if rate.enabled else {"enabled": False},
    }


def _read_back_evals(folder: Path, evals: dict[int, dict]) -> None:
    from mathtune.runs import read_json

    for sub in sorted(folder.glob("step-*")):
        summary = read_json(sub / "summary.json")
        if summary:
            evals.setdefault(int(sub.name.split("-")[1]), summary)


def history_from_log(log_history: list[dict]) -> list[dict]:
    """Per-step GRPO metrics from the trainer's log, with the signal share (groups whose rewards differ) added."""
    out = []
    for h in log_history:
        if "reward" in h:
            row = dict(h)
            if "signal_share" not in h and "frac_reward_zero_std" in h:
                row["signal_share"] = 1.0 - h["frac_reward_zero_std"]
            out.append(row)
    return out
