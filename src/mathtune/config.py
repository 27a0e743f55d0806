"""Recipes: YAML -> validated pydantic models. Every error is one line naming the file, the key and what was expected."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from mathtune.errors import UserError
from mathtune.data.curation import CurationConfig, validate_train
from mathtune.registry import Registry, UnknownNameError
from mathtune.schema import Strict, describe_error
from mathtune.recurrent.recipe import RecurrentRecipe
from mathtune.plan.recipe import PlanConfig
from mathtune.train.fast import SpeedConfig

DEFAULT_RECIPE = "default"
LAUNCH_CONFIGS = "accelerate"  # recipes/accelerate/ holds `accelerate launch --config_file` files, not recipes
# kind -> the recipe schema of that stage; each stage's config module registers its own (train/sft_config.py,
# train/grpo_config.py, verifier/config.py). A recipe without `kind` takes the kind of the command that reads it.
RECIPE_KINDS: Registry[type["Recipe"]] = Registry("recipe kind")


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
    # end a completion once it ends in a template loop (the same sentence again with new numbers, eval/diagnostics.py)
    # instead of at max_new_tokens: faster, and the grade of such rows barely moves (README "GSM8K"); the rows are
    # counted as loops and as `stopped in a loop`, never as finished
    stop_on_loop: bool = False
    # GSM8K's calculator (Cobbe et al. 2021): after a note `<<48/2=` the tool writes `24>>` (eval/calculator.py).
    # For models trained on solutions that keep the notes (`{source: gsm8k, calculator_notes: true}`); its scores
    # are a tool-assisted protocol, reported apart from tool-free ones
    calculator: bool = False
    merge_adapter: bool = True  # fold a LoRA adapter into the weights before generating (same outputs, faster)
    # opt-in: generate in bf16 (the model is cast in place) or with int8 linear layers (torch dynamic quantisation,
    # CPU only). Faster on some CPUs, but greedy completions then differ from fp32 ones (measured:
    # benchmarks/results/eval_speed.md); fp32 stays the default. auto: bf16 where the device multiplies bf16 fast
    # (mathtune.precision.decide_precision, as speed.precision: auto), else fp32; the choice is in summary.json
    precision: Literal["fp32", "bf16", "int8", "auto"] = "fp32"


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
    """The blocks every stage shares: model, data, format, LoRA, trainer arguments (passed to TRL), evaluation.

    Used as it is for evaluation-only recipes (`mathtune eval`); each training stage's schema extends it with its own
    block and checks `trainer:` against the TRL config class that stage uses (RECIPE_KINDS).
    """

    kind: Literal["eval"] = "eval"
    name: str = "run"
    model: str = "default"
    seed: int = 42
    data: DataConfig
    format: FormatConfig = FormatConfig()
    lora: LoraConfig = LoraConfig()
    quantization: QuantConfig = QuantConfig()
    # Passed straight to the stage's TRL config (trl.SFTConfig, trl.GRPOConfig); checked against it at load.
    trainer: dict[str, Any] = {}
    # A stage's check of `trainer:` against its TRL config (raises ValueError naming the key); None: nothing to check.
    trainer_check: ClassVar[Callable[[dict[str, Any]], None] | None] = None
    early_stopping_patience: int | None = Field(None, gt=0)
    eval: EvalConfig = EvalConfig()
    baseline: bool = True  # evaluate the untuned model first
    recurrent: RecurrentRecipe | None = None  # recurrent-depth models (recurrent/recipe.py)
    plan: PlanConfig | None = None  # shapes for `mathtune train --dry-run` offline (plan/recipe.py)
    speed: SpeedConfig = SpeedConfig()  # training-speed levers (train/fast.py)

    @field_validator("trainer")
    @classmethod
    def _trainer(cls, trainer: dict[str, Any]) -> dict[str, Any]:
        if cls.trainer_check is not None:
            cls.trainer_check(trainer)
        return trainer


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-typed value."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected key=value, e.g. --set lora.r=8")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {text!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)}); "
                        "quote it to pass it as text") from None
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


def _parse_yaml(text: str, name: str) -> dict:
    """A recipe's mapping from its YAML text; bad YAML or another top-level shape is one line naming `name`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{name}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{name}: expected a mapping of recipe keys at the top level")
    return data


def read_recipe_file(path: str | None) -> tuple[str, dict]:
    """Read a recipe's YAML (None = the embedded default) and return (display name, mapping)."""
    if path is None or path == DEFAULT_RECIPE:
        text = resources.files("mathtune").joinpath("recipes/default.yaml").read_text()
        return "default recipe", yaml.safe_load(text)
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{path}: is a folder; expected a recipe YAML file or a shipped recipe name")
    if not p.is_file():
        return path, _shipped_recipe(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected a recipe in YAML") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    if "\x00" in text:  # YAML would read a binary file as one odd string; say what it is instead
        raise UserError(f"{path}: a binary file; expected a recipe in YAML")
    return str(path), _parse_yaml(text, str(path))


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped in the package (`sft/tinyllama_gsm8k_qlora`, `tiny/sft_gsm8k`, ...)."""
    names: list[str] = []

    def walk(folder, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                if not (prefix == "" and item.name == LAUNCH_CONFIGS):
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


def recipe_kinds() -> Registry[type[Recipe]]:
    """The registry of recipe schemas by kind, with every stage's schema registered."""
    import mathtune.train.grpo_config  # noqa: F401  (importing registers the kind)
    import mathtune.train.sft_config  # noqa: F401
    import mathtune.verifier.config  # noqa: F401

    return RECIPE_KINDS


def validate_recipe(raw: dict, name: str, kind: str | None = None) -> Recipe:
    """Validate a recipe mapping whole with the schema of its kind (`kind:` in it, else `kind`, else sft)."""
    kinds = recipe_kinds()
    given = raw.get("kind")
    try:
        schema = kinds.get(str(given or kind or "sft"))
    except UnknownNameError as exc:
        raise UserError(f"{name}: kind: {exc}") from None
    if kind is not None and given is not None and given != kind:
        raise UserError(f"{name}: kind: this is a {given!r} recipe; this command runs {kind!r} recipes")
    try:
        return schema.model_validate({**raw, "kind": schema.model_fields["kind"].default})
    except ValidationError as exc:
        raise UserError(f"{name}: {describe_error(exc, '', schema)}") from None


def load_recipe(path: str | None = None, overrides: list[str] | None = None, kind: str | None = None,
                saved: bool = False) -> Recipe:
    """Load, override and validate a recipe whole (the trainer block against its stage's TRL config) before any
    work; errors are UserError with one line naming the file and key. `saved`: a run folder's own recipe.yaml."""
    name, raw = read_recipe_file(path)
    if saved and "kind" not in raw:
        # saved before recipes had kinds, with the blocks of every stage; keep the ones of this kind's schema
        fields = recipe_kinds().get(kind or "sft").model_fields
        raw = {k: v for k, v in raw.items() if k in fields}
    raw = apply_overrides(raw, overrides or [])
    return validate_recipe(raw, name, kind)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what a run folder saves so the run can be repeated)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
