"""Recipes: YAML -> validated pydantic models. Every error is one line naming the file, the key and what was expected."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from mathtune.errors import UserError
from mathtune.data.curation import CurationConfig, validate_train
from mathtune.schema import Strict, describe_error
from mathtune.recurrent.recipe import RecurrentRecipe
from mathtune.train.grpo_config import GrpoConfig
from mathtune.verifier.config import VerifierConfig
from mathtune.plan.recipe import PlanConfig
from mathtune.train.fast import SpeedConfig

DEFAULT_RECIPE = "default"


class LoraConfig(Strict):
    """PEFT LoRA settings."""

    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    modules_to_save: list[str] = []


class QuantConfig(Strict):
    """bitsandbytes loading for QLoRA (CUDA only)."""

    load_in_4bit: bool = False
    load_in_8bit: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


class FormatConfig(Strict):
    """How a row becomes a prompt and a training target."""

    template: Literal["chat", "instruction"] = "chat"
    reasoning: Literal["cot", "think", "answer_only"] = "cot"
    answer_marker: Literal["hash", "boxed"] = "hash"
    system_prompt: str | None = None
    # Appended to the question; None picks a sentence that names the answer marker.
    instruction: str | None = None


class EvalConfig(Strict):
    """Generation and grading settings for evaluation."""

    max_new_tokens: int = Field(1024, gt=0)
    batch_size: int = Field(64, gt=0)  # rows decoded together (benchmarks/results/eval_speed.md picks it)
    limit: int | None = Field(None, gt=0)
    backend: Literal["hf", "vllm"] = "hf"
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    samples: int = Field(1, gt=0)
    seed: int = 0
    bench: str = "auto"  # gold-answer parsing rule passed to the grader
    # K worked examples before each question, from a named prompt set (data/fewshot.py; never the test split);
    # a few-shot prompt is plain text in that set's own format, as lm-eval builds it, not the chat template
    fewshot: int = Field(0, ge=0)
    fewshot_set: str | None = None  # None: the benchmark's default set (gsm8k: "gsm8k-cot", Wei et al. 2022)
    # cut a completion before the first of these strings; None: the prompt set's (few-shot) or "Question:"/"Q:"
    stop: list[str] | None = None
    # stop after a completed final-answer line (`#### N`, answer_marker hash), so the first answer given is graded
    stop_after_answer: bool = True
    merge_adapter: bool = True  # fold a LoRA adapter into the weights before generating (same outputs, faster)
    # opt-in: generate in bf16 (the model is cast in place). Faster on CPUs with AMX/AVX512-BF16, but greedy
    # completions then differ from fp32 ones (measured: benchmarks/results/eval_speed.md); fp32 stays the default
    precision: Literal["fp32", "bf16"] = "fp32"


class DataConfig(Strict):
    """Training and held-out evaluation sources: `{source: NAME, ...options of that source}`."""

    # one source entry, or a list of them; each may add weight, filters and stratify (data/curation.py)
    train: dict[str, Any] | list[dict[str, Any]] | None = None
    eval: dict[str, Any]
    extra_eval: dict[str, dict[str, Any]] = {}  # more held-out sets, evaluated before and after: {name: source spec}
    validation_size: int = Field(0, ge=0)  # rows held out of train for eval loss and early stopping
    curation: CurationConfig = CurationConfig()  # dedup, decontamination, mix size (data/curation.py)

    @field_validator("train", "eval")
    @classmethod
    def _check_source(cls, spec: dict | list | None, info) -> dict | list | None:
        if spec is not None:
            from mathtune.data.sources import validate_spec  # importing registers the built-in sources

            if info.field_name == "train":
                validate_train(spec)
            else:
                validate_spec(spec, where=f"data.{info.field_name}")
        return spec

    @field_validator("extra_eval")
    @classmethod
    def _check_extra(cls, specs: dict[str, dict]) -> dict[str, dict]:
        from mathtune.data.sources import validate_spec

        for name, spec in specs.items():
            validate_spec(spec, where=f"data.extra_eval.{name}")
        return specs


class Recipe(Strict):
    """A whole run: model, data, format, LoRA, trainer arguments (passed to TRL) and evaluation."""

    name: str = "run"
    model: str = "default"
    seed: int = 42
    data: DataConfig
    format: FormatConfig = FormatConfig()
    lora: LoraConfig = LoraConfig()
    quantization: QuantConfig = QuantConfig()
    # Passed straight to trl.SFTConfig; keys are checked against it when training starts.
    trainer: dict[str, Any] = {}
    early_stopping_patience: int | None = Field(None, gt=0)
    eval: EvalConfig = EvalConfig()
    baseline: bool = True  # evaluate the untuned model first
    recurrent: RecurrentRecipe | None = None  # recurrent-depth models (recurrent/recipe.py)
    grpo: GrpoConfig = GrpoConfig()  # rewards and evaluation of `mathtune grpo` (train/grpo_config.py)
    verifier: VerifierConfig = VerifierConfig()  # `mathtune verifier ...` (verifier/config.py)
    plan: PlanConfig | None = None  # shapes for `mathtune train --dry-run` offline (plan/recipe.py)
    speed: SpeedConfig = SpeedConfig()  # training-speed levers (train/fast.py)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-typed value."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected key=value, e.g. --set lora.r=8")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" as a string; on the command line it is meant as a number
            value = float(value) if value.strip().lower() not in {"nan", "inf", "-inf"} else value
        except ValueError:
            pass
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of `raw` with each `--set key=value` applied (nested keys with dots; list items by index,
    e.g. `data.train.1.weight=0.5`)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, list):
                if not (part.isdigit() and int(part) < len(node)):
                    raise UserError(f"--set {item!r}: {part!r} is not an index of that list (0..{len(node) - 1})")
                part = int(part)
            elif not isinstance(node.get(part, {}), (dict, list)) and not last:
                raise UserError(f"--set {item!r}: {part!r} is not a block of the recipe")
            if last:
                node[part] = value
            else:
                node = node[part] if isinstance(node, list) else node.setdefault(part, {})
    return out


def read_recipe_file(path: str | None) -> tuple[str, dict]:
    """Read a recipe's YAML (None = the embedded default) and return (display name, mapping)."""
    if path is None or path == DEFAULT_RECIPE:
        text = resources.files("mathtune").joinpath("recipes/default.yaml").read_text()
        return "default recipe", yaml.safe_load(text)
    p = Path(path)
    if not p.is_file():
        return path, _shipped_recipe(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of recipe keys at the top level")
    return str(path), data


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped in the package (`sft/tinyllama_gsm8k_qlora`, `tiny/sft_gsm8k`, ...)."""
    names: list[str] = []

    def walk(folder, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
            elif item.name.endswith(".yaml"):
                names.append(prefix + item.name.removesuffix(".yaml"))

    walk(resources.files("mathtune").joinpath("recipes"), "")
    return sorted(names)


def _shipped_recipe(name: str) -> dict:
    """The mapping of a shipped recipe called `name` (".yaml" optional); unknown: one line naming close names."""
    import difflib

    key = name.removesuffix(".yaml")
    known = shipped_recipes()
    if key not in known:
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        if close:
            hint = f" (close shipped recipes: {', '.join(close)})"
        else:  # a file name needs no list; a mistyped shipped name does
            hint = "" if name.endswith((".yaml", ".yml")) else f" (shipped recipes: {', '.join(known)})"
        raise UserError(f"{name}: recipe file not found, nor a shipped recipe of that name{hint}")
    text = resources.files("mathtune").joinpath(f"recipes/{key}.yaml").read_text()
    return yaml.safe_load(text)


def load_recipe(path: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """Load, override and validate a recipe; errors are UserError with one line naming the file and key."""
    name, raw = read_recipe_file(path)
    raw = apply_overrides(raw, overrides or [])
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{name}: {describe_error(exc, '', Recipe)}") from None


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what a run folder saves so the run can be repeated)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
