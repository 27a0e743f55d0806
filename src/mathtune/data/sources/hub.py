"""Public math datasets from the Hugging Face hub, each mapped onto the row schema.

    data:
      train: {source: gsm8k, split: train}
      eval:  {source: math500, path: ~/data/MATH-500}      # a local copy: no hub needed

Without `path` a source calls `datasets.load_dataset(hub_id, config, split=...)`. With `path` it reads a local
copy in the hub's own layout instead: one .jsonl/.json/.parquet file (taken whole, whatever the split), or a folder
holding `<split>.jsonl` or `<split>-00000-of-00001.parquet` files, under `<config>/` when the dataset has configs
(GSM8K's `main/`, MATH's `algebra/`, ...). Each row's `meta` keeps the dataset's own curation fields under their
own names (MATH's level and type, Magpie's difficulty and quality, ...) for filters to use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from mathtune.answers.extract import last_boxed
from mathtune.data.sources.base import DataError, SourceOptions, make_row, register_source
from mathtune.data.sources.local import SUFFIXES, gsm8k_final, gsm8k_solution, read_records

# hendrycks/competition_math was taken down; this mirror keeps its fields and has one config per subject
MATH_HUB_ID = "EleutherAI/hendrycks_math"
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
MathSubject = Literal[
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
]


class HubOptions(SourceOptions):
    """Options every hub source shares; each subclass adds its `split` with the dataset's real split names."""

    path: str | None = None  # a local copy in the hub's layout, used instead of the hub


def hub_records(hub_id: str, config: str | None, split: str, path: str | None, limit: int | None) -> list[dict]:
    """Raw records of one split: from the local copy at `path` when given, else from the hub."""
    if path is not None:
        return _local_records(Path(path).expanduser(), config, split)
    import datasets  # heavy; only hub loads pay for it

    # slicing the split makes `limit` cheap to honour (the download is still whole: that is how the hub works)
    split_arg = split if limit is None else f"{split}[:{limit}]"
    try:
        return datasets.load_dataset(hub_id, config, split=split_arg).to_list()
    except Exception as e:  # network, auth, missing config: all end the same way for the user
        first_line = (str(e).strip().splitlines() or [""])[0]
        name = f"{hub_id} ({config})" if config else hub_id
        raise DataError(
            f"could not load {name} split {split!r} from the hub ({type(e).__name__}: {first_line}); "
            "offline? download a copy and set `path` to it"
        ) from e


def _is_split_file(file: Path, split: str) -> bool:
    # "train.jsonl", "train-00000-of-00009.parquet"; not "train_1M-..." when asking for "train"
    stem = file.name[: -len(file.suffix)]
    return file.suffix in SUFFIXES and (stem == split or stem.startswith(split + "-"))


def _local_records(path: Path, config: str | None, split: str) -> list[dict]:
    if path.is_file():
        return read_records(path)
    if not path.is_dir():
        raise DataError(f"path not found: {path}")
    root = path / config if config and (path / config).is_dir() else path
    files = sorted(f for f in root.rglob("*") if _is_split_file(f, split))
    if not files:
        raise DataError(f"{root}: no files for split {split!r} (expected {split}.jsonl or {split}-*.parquet)")
    return [record for f in files for record in read_records(f)]


def map_records(records: list[dict], to_row: Callable[[dict], dict], origin: str) -> list[dict]:
    """Apply `to_row` to each record; a missing key or bad value becomes a DataError naming origin and row."""
    rows = []
    for i, record in enumerate(records, start=1):
        try:
            rows.append(to_row(record))
        except KeyError as e:
            have = ", ".join(sorted(record)) or "none"
            raise DataError(f"{origin}: row {i}: missing key {e.args[0]!r} (keys there: {have})") from None
        except DataError as e:
            raise DataError(f"{origin}: row {i}: {e}") from None
    return rows


def _load(hub_id: str, config: str | None, opts: Any, to_row: Callable[[dict], dict]) -> list[dict]:
    records = hub_records(hub_id, config, opts.split, opts.path, opts.limit)
    return map_records(records, to_row, opts.path or hub_id)


def plain_number(value: Any) -> str:
    """A gold number as text without float noise: 72.0 -> "72", 2.50 -> "2.5", "145.0" -> "145"."""
    if isinstance(value, str):
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            return value.strip()
        value = number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).strip()
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    # 10 decimals: enough for any textbook answer, and drops binary noise like 0.30000000000000004
    return f"{round(value, 10):.10f}".rstrip("0").rstrip(".")


def _join(body: str, question: str) -> str:
    # SVAMP and ASDiv split a problem into body and question; SVAMP bodies often lack the final period
    body = body.strip()
    if body and body[-1] not in ".!?":
        body += "."
    return f"{body} {question.strip()}".strip()


def _pick(record: dict, keys: tuple[str, ...]) -> dict:
    # curation fields differ a little between dataset versions: keep those present
    return {k: record[k] for k in keys if record.get(k) is not None}


# --- grade-school word problems ---------------------------------------------------------------------------------


class GSM8KOptions(HubOptions):
    """Options of the `gsm8k` source: the copy shipped in the package unless `path` or `hub: true` says otherwise."""

    split: Literal["train", "test"]
    config: Literal["main", "socratic"] = "main"
    hub: bool = False  # load openai/gsm8k from the hub instead of the shipped copy (needed for `socratic`)
    # keep GSM8K's `<<48/2=24>>` calculator notes in the solution: the training side of `eval.calculator`
    calculator_notes: bool = False


def packaged_gsm8k(split: str) -> Path:
    """The GSM8K split shipped inside mathtune (MIT; `mathtune/data/gsm8k/`, identical to openai/gsm8k `main`)."""
    from importlib.resources import files

    return Path(str(files("mathtune.data") / "gsm8k" / f"{split}.jsonl"))


def _gsm8k_row(r: dict, calculator_notes: bool = False) -> dict:
    final = gsm8k_final(r["answer"])
    if final is None:
        raise DataError("no '#### N' final-answer line in 'answer'")
    return make_row(r["question"], final, gsm8k_solution(r["answer"], calculator_notes), "gsm8k")


@register_source("gsm8k", GSM8KOptions)
def load_gsm8k(opts: GSM8KOptions) -> list[dict]:
    """GSM8K (openai/gsm8k): answer after `####`, solution without (or with) the `<<a*b=c>>` calculator notes."""
    to_row = functools.partial(_gsm8k_row, calculator_notes=opts.calculator_notes)
    if opts.path is None and not opts.hub:
        if opts.config != "main":
            raise DataError(f"gsm8k: config {opts.config!r} is not shipped with mathtune; set `hub: true` or `path`")
        packaged = packaged_gsm8k(opts.split)
        return map_records(read_records(packaged), to_row, str(packaged))
    return _load("openai/gsm8k", opts.config, opts, to_row)


class GSMHardOptions(HubOptions):
    """Options of the `gsm_hard` source."""

    split: Literal["train"] = "train"  # the hub's only split; it is a test set all the same


@register_source("gsm_hard", GSMHardOptions)
def load_gsm_hard(opts: GSMHardOptions) -> list[dict]:
    """GSM-Hard (reasoning-machines/gsm-hard): GSM8K with bigger numbers; the float target becomes plain text."""
    return _load(
        "reasoning-machines/gsm-hard",
        None,
        opts,
        lambda r: make_row(r["input"], plain_number(r["target"]), "", "gsm_hard"),
    )


class SVAMPOptions(HubOptions):
    """Options of the `svamp` source."""

    split: Literal["train", "test"]


@register_source("svamp", SVAMPOptions)
def load_svamp(opts: SVAMPOptions) -> list[dict]:
    """SVAMP (ChilleD/SVAMP): Body + Question joined; the equation and type stay in meta."""
    return _load(
        "ChilleD/SVAMP",
        None,
        opts,
        lambda r: make_row(
            _join(r["Body"], r["Question"]),
            plain_number(r["Answer"]),
            "",
            "svamp",
            _pick(r, ("ID", "Equation", "Type")),
        ),
    )


class ASDivOptions(HubOptions):
    """Options of the `asdiv` source."""

    split: Literal["validation"] = "validation"  # the hub's only split


@register_source("asdiv", ASDivOptions)
def load_asdiv(opts: ASDivOptions) -> list[dict]:
    """ASDiv (EleutherAI/asdiv): body + question joined; the unit is cut from "9 (apples)"."""
    return _load(
        "EleutherAI/asdiv",
        "asdiv",
        opts,
        lambda r: make_row(
            _join(r["body"], r["question"]),
            r["answer"].split(" (")[0],
            "",
            "asdiv",
            _pick(r, ("solution_type", "formula")),
        ),
    )


# --- competition math -------------------------------------------------------------------------------------------


class MathOptions(HubOptions):
    """Options of the `math` source."""

    split: Literal["train", "test"]
    subjects: list[MathSubject] | None = None  # None: all seven


def _math_row(r: dict) -> dict:
    return make_row(r["problem"], last_boxed(r["solution"]) or "", r["solution"], "math", _pick(r, ("level", "type")))


@register_source("math", MathOptions)
def load_math(opts: MathOptions) -> list[dict]:
    """MATH (EleutherAI/hendrycks_math, one config per subject, loaded in turn): answer = last \\boxed{}."""
    subjects = list(opts.subjects or MATH_SUBJECTS)
    local = Path(opts.path).expanduser() if opts.path else None
    if local is not None and local.is_dir():
        present = [s for s in subjects if (local / s).is_dir()]
        if opts.subjects and len(present) < len(subjects):
            missing = next(s for s in subjects if s not in present)
            raise DataError(f"{local}: no folder for subject {missing!r}")
        # a flat folder (no subject folders) is read as one config
        subjects = present or [None]
    elif local is not None:
        subjects = [None]  # one file: taken whole
    records = [r for s in subjects for r in hub_records(MATH_HUB_ID, s, opts.split, opts.path, opts.limit)]
    return map_records(records, _math_row, opts.path or MATH_HUB_ID)


class Math500Options(HubOptions):
    """Options of the `math500` source."""

    split: Literal["test"] = "test"  # the hub's only split


@register_source("math500", Math500Options)
def load_math500(opts: Math500Options) -> list[dict]:
    """MATH-500 (HuggingFaceH4/MATH-500): the 500-problem MATH test subset, with its published answers."""
    return _load(
        "HuggingFaceH4/MATH-500",
        None,
        opts,
        lambda r: make_row(
            r["problem"], r["answer"], r["solution"], "math500", _pick(r, ("subject", "level", "unique_id"))
        ),
    )


# --- large synthetic training sets ------------------------------------------------------------------------------


class NuminaCoTOptions(HubOptions):
    """Options of the `numina_cot` source."""

    split: Literal["train", "test"]


@register_source("numina_cot", NuminaCoTOptions)
def load_numina_cot(opts: NuminaCoTOptions) -> list[dict]:
    """NuminaMath-CoT (AI-MO/NuminaMath-CoT): answer = last \\boxed{} of the solution, "" without one."""
    return _load(
        "AI-MO/NuminaMath-CoT",
        None,
        opts,
        lambda r: make_row(
            r["problem"], last_boxed(r["solution"]) or "", r["solution"], "numina_cot", _pick(r, ("source",))
        ),
    )


MAGPIE_META = (
    "conversation_id",
    "uuid",
    "difficulty",
    "task_category",
    "other_task_category",
    "input_quality",
    "quality_explanation",
    "intent",
    "knowledge",
    "language",
)


class MagpieOptions(HubOptions):
    """Options of the `magpie_reasoning` source."""

    split: Literal["train"] = "train"  # the hub's only split


@register_source("magpie_reasoning", MagpieOptions)
def load_magpie_reasoning(opts: MagpieOptions) -> list[dict]:
    """Magpie-Reasoning-V2 with DeepSeek-R1 traces: the response (with its <think> trace) is the solution."""
    return _load(
        "Magpie-Align/Magpie-Reasoning-V2-250K-CoT-Deepseek-R1-Llama-70B",
        None,
        opts,
        lambda r: make_row(
            r["instruction"],
            last_boxed(r["response"]) or "",
            r["response"],
            "magpie_reasoning",
            _pick(r, MAGPIE_META),
        ),
    )


class OpenMathInstruct2Options(HubOptions):
    """Options of the `openmathinstruct2` source."""

    # the full split is 14M rows; the fair-downsampled 1M one is the sane default
    split: Literal["train", "train_1M", "train_2M", "train_5M"] = "train_1M"


@register_source("openmathinstruct2", OpenMathInstruct2Options)
def load_openmathinstruct2(opts: OpenMathInstruct2Options) -> list[dict]:
    """OpenMathInstruct-2 (nvidia/OpenMathInstruct-2): expected_answer is the gold (majority vote for new problems)."""
    return _load(
        "nvidia/OpenMathInstruct-2",
        None,
        opts,
        lambda r: make_row(
            r["problem"],
            str(r["expected_answer"]),
            r["generated_solution"],
            "openmathinstruct2",
            _pick(r, ("problem_source",)),
        ),
    )
