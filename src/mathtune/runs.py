"""Run folders: what produced a run (recipe, version, git SHA, seed), atomic writes, and resume.

This module owns the run folder's layout (the file-name constants below), the one atomic folder publish and the one
adapter save, the record of what each stage depended on (so that `--resume` refuses a recipe changed under a started
stage), the stage timings that add up across resumes, and the cleanup of a failed start.

Under `accelerate launch` every rank runs the same command but only rank 0 writes: every write of a run folder goes
through atomic_path / staging_dir, which hand the other ranks a private scratch path that is thrown away, and the
run.json updates return early there (mathtune.distributed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mathtune import distributed
from mathtune.errors import UserError

RUN_MARKER = "run.json"  # what produced the run; its presence makes a folder a run folder
RECIPE_FILE = "recipe.yaml"  # the resolved recipe
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
TRAIN_LOG = "train_log.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
CURATION_FILE = "curation.json"  # rows kept and dropped by each curation step of the training data
# written by every start, so they alone are nothing worth resuming
START_FILES = {RUN_MARKER, RECIPE_FILE}


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private temporary folder, removed afterwards (where a non-zero rank's writes go)."""
    folder = Path(tempfile.mkdtemp(prefix="mathtune-rank-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it replaces `path` in one rename.

    Readers never see half a file, and an interrupted write leaves the old file as it was. The file gets the
    permissions a plain `open()` would give (mkstemp's are 0600). On a rank other than 0 the path is a scratch file
    outside the run folder, removed afterwards: rank 0 alone writes.
    """
    if not distributed.is_main_process():
        with _scratch() as folder:
            yield folder / path.name
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (see atomic_path), synced to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write `data` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (see atomic_path), then free it: a reader never sees half a plot."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file (None when it does not exist)."""
    return json.loads(path.read_text()) if path.is_file() else None


def git_sha() -> str | None:
    """The SHA of the mathtune checkout, when installed from one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def prepare_run_dir(path: Path, resume: bool) -> Path:
    """Create a fresh run folder, or reopen one with `resume`; never overwrite a finished or running run silently."""
    marker = path / RUN_MARKER
    if path.exists() and any(path.iterdir()):
        if not marker.is_file():
            raise UserError(f"--output {path}: folder exists and is not a mathtune run; choose another folder")
        if not resume:
            raise UserError(f"--output {path}: already holds a run; pass --resume to continue it or choose another folder")
    elif resume:
        raise UserError(f"--resume: {path} holds no run to resume")
    distributed.wait_for_everyone()  # every rank has checked the folder as it was before rank 0 creates it
    if distributed.is_main_process():
        path.mkdir(parents=True, exist_ok=True)
    return path


def write_run_info(path: Path, recipe_yaml: str, seed: int, command: str) -> None:
    """Save the resolved recipe and what produced the run (version, git SHA, seed, command, start time)."""
    from mathtune import __version__

    if not distributed.is_main_process():
        return
    atomic_write_text(path / "recipe.yaml", recipe_yaml)
    info = read_json(path / RUN_MARKER) or {}
    info.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%S"))
    info.update(command=command, mathtune_version=__version__, git_sha=git_sha(), seed=seed)
    atomic_write_json(path / RUN_MARKER, info)


def update_run_info(path: Path, **fields: Any) -> None:
    """Add `fields` to the run's run.json (merging one level into dict values); nothing when there is no run.json."""
    info = read_json(path / RUN_MARKER)
    if info is None or not distributed.is_main_process():
        return
    for key, value in fields.items():
        info[key] = {**info[key], **value} if isinstance(value, dict) and isinstance(info.get(key), dict) else value
    atomic_write_json(path / RUN_MARKER, info)


def default_run_dir(base: Path, name: str) -> Path:
    """A new, timestamped folder under `base` for a run called `name` (rank 0's time on every rank)."""
    return base / distributed.from_main(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def publish_dir(tmp: Path, final: Path) -> Path:
    """Move the finished folder `tmp` to `final` (replacing an older one); readers never see half a folder."""
    if final.exists():
        old = final.with_name(f".{final.name}-old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


@contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `final`; when the block ends without error it becomes `final` (on a
    rank other than 0: a scratch folder, thrown away)."""
    if not distributed.is_main_process():
        with _scratch() as folder:
            yield folder
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
        publish_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_adapter(model, tokenizer, run_dir: Path) -> Path:
    """Save a trained LoRA adapter (and the tokenizer) to `run_dir/adapter` in one atomic folder publish."""
    with staging_dir(run_dir / ADAPTER_DIR) as tmp:
        model.save_pretrained(tmp)  # safetensors by default
        tokenizer.save_pretrained(tmp)
    return run_dir / ADAPTER_DIR


def save_trained_adapter(trainer, tokenizer, run_dir: Path) -> Path:
    """save_adapter for a trainer's model; under `accelerate launch` through the Trainer's own save_model, which every
    rank must enter (FSDP and ZeRO-3 gather the sharded weights) and which writes on rank 0 only."""
    if not distributed.launched():
        return save_adapter(trainer.model, tokenizer, run_dir)
    final = run_dir / ADAPTER_DIR
    tmp = None
    if distributed.is_main_process():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent)
    tmp = Path(distributed.from_main(tmp))  # one folder for all ranks: the Trainer writes into it from rank 0
    trainer.save_model(str(tmp))
    distributed.wait_for_everyone()
    if distributed.is_main_process():
        tokenizer.save_pretrained(tmp)
        (tmp / "training_args.bin").unlink(missing_ok=True)  # the adapter folder holds what save_adapter writes
        publish_dir(tmp, final)
    distributed.wait_for_everyone()
    return final


def read_samples(path: Path, required: tuple[str, ...] = ()) -> list[dict]:
    """The records of a samples.jsonl (none when absent): the one reader of that file.

    Tolerant of what a kill leaves: a torn last line is dropped (that sample is redone on resume) and blank lines
    are skipped. Anything else is a one-line UserError naming the file and line: a broken line before the last,
    a line that is not a JSON object, or one missing a `required` field.
    """
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            if n == last:  # torn by a kill mid-write
                break
            raise UserError(f"{path}:{n}: not valid JSON ({exc.__class__.__name__}: {exc.args[0]})") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
        missing = [k for k in required if k not in rec]
        if missing:
            raise UserError(f"{path}:{n}: missing field '{missing[0]}' (not a mathtune samples.jsonl?)")
        out.append(rec)
    return out


# --- what each stage depended on, and resume ---------------------------------------------------------------------

INERT_KEYS = ("name", "plan")  # no stage's output depends on them: changing them never blocks a resume
EVAL_KEYS = ("kind", "model", "recurrent", "quantization", "format", "eval", "data.eval", "data.extra_eval")
# stage -> the recipe keys its output depends on (a dotted key covers everything below it); a stage not listed
# depends on every key but INERT_KEYS and `baseline`
STAGE_KEYS: dict[str, tuple[str, ...]] = {"baseline": EVAL_KEYS}
STAGE_IGNORES: dict[str, tuple[str, ...]] = {
    "train": ("eval",),  # SFT never reads `eval:`
    "verifier-data": ("trainer", "lora", "speed", "early_stopping_patience", "verifier.balance",
                      "verifier.score_batch_size"),  # labelled rows come before any verifier training
}


def flat_recipe(data: dict, prefix: str = "") -> dict[str, Any]:
    """A recipe mapping as {dotted key: leaf value}; lists stay whole (one key per list)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_recipe(value, f"{name}."))
        else:
            out[name] = value
    return out


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def stage_dependencies(stage: str, recipe: dict) -> dict[str, Any]:
    """The part of a resolved recipe (as a mapping) that `stage`'s output depends on, flattened."""
    flat = flat_recipe(recipe)
    if stage in STAGE_KEYS:
        return {k: v for k, v in flat.items() if _under(k, STAGE_KEYS[stage])}
    ignored = INERT_KEYS + ("baseline",) + STAGE_IGNORES.get(stage, ())
    return {k: v for k, v in flat.items() if not _under(k, ignored)}


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Dotted keys whose value differs between two flattened recipes (added and removed keys included)."""
    return sorted(k for k in set(before) | set(after) if _canon(before.get(k)) != _canon(after.get(k)))


def _mapping(recipe: Any) -> dict:
    # stages pass their validated recipe; this module stays below config.py, so it only asks for its dump
    return recipe if isinstance(recipe, dict) else recipe.model_dump(mode="json")


def record_stage(run_dir: Path, stage: str, recipe: Any) -> None:
    """Save, when `stage` first starts, the recipe values its output depends on (checked by check_resume)."""
    if not distributed.is_main_process():
        return
    recipe = _mapping(recipe)
    info = read_json(run_dir / RUN_MARKER) or {}
    stages = info.setdefault("stages", {})
    if stage not in stages:
        stages[stage] = {"depends_on": stage_dependencies(stage, recipe), "attempts": []}
        atomic_write_json(run_dir / RUN_MARKER, info)


def check_resume(run_dir: Path, recipe: dict) -> None:
    """Refuse (one line) a resumed recipe that changes a key a started stage depended on; others may change."""
    recipe = _mapping(recipe)
    info = read_json(run_dir / RUN_MARKER) or {}
    stages = info.get("stages")
    if stages is None:  # a run from before stages were recorded: every key counts, against its saved recipe
        import yaml

        saved = yaml.safe_load((run_dir / RECIPE_FILE).read_text()) if (run_dir / RECIPE_FILE).is_file() else {}
        # such a recipe also saved the blocks of stages it never ran (grpo:, verifier:): those are not changes
        saved = {k: v for k, v in (saved or {}).items() if k in recipe or k == "kind"}
        saved.setdefault("kind", recipe.get("kind"))
        stages = {"run": {"depends_on": stage_dependencies("run", saved)}}
    problems = {}
    for stage, rec in stages.items():
        keys = changed_keys(rec["depends_on"], stage_dependencies(stage, recipe))
        if keys:
            problems[stage] = keys
    if problems:
        keys = sorted({k for ks in problems.values() for k in ks})
        raise UserError(
            f"--resume {run_dir}: the recipe changed {', '.join(keys)}, which the started stage(s) "
            f"{', '.join(problems)} depended on; undo the change or start a new run folder")



# --- timings that add up across resumes --------------------------------------------------------------------------


@contextmanager
def stage_attempt(run_dir: Path, stage: str, recipe: Any, outputs: list[str]) -> Iterator[None]:
    """Record `stage` (see record_stage) and time this attempt at it; `outputs` are the run-folder paths (globs)
    it writes, from which a killed attempt's time is recovered (stage_seconds)."""
    record_stage(run_dir, stage, recipe)
    start = time.time()
    _update_attempts(run_dir, stage, lambda atts: atts.append({"started": start, "seconds": None, "outputs": outputs}))
    yield
    seconds = time.time() - start

    def finish(atts: list[dict]) -> None:
        atts[-1]["seconds"] = seconds

    _update_attempts(run_dir, stage, finish)


def _update_attempts(run_dir: Path, stage: str, change) -> None:
    if not distributed.is_main_process():
        return
    info = read_json(run_dir / RUN_MARKER) or {}
    change(info["stages"][stage].setdefault("attempts", []))
    atomic_write_json(run_dir / RUN_MARKER, info)


def stage_seconds(run_dir: Path, stage: str) -> float | None:
    """Seconds spent on `stage` over every attempt. An attempt that was killed counts until its last write to its
    outputs (the work a resume keeps); None when the stage never started."""
    rec = ((read_json(run_dir / RUN_MARKER) or {}).get("stages") or {}).get(stage)
    if not rec or not rec.get("attempts"):
        return None
    total = 0.0
    for att in rec["attempts"]:
        if att["seconds"] is not None:
            total += att["seconds"]
            continue
        times = [f.stat().st_mtime for pattern in att["outputs"] for top in run_dir.glob(pattern)
                 for f in ([top] if top.is_file() else top.rglob("*")) if f.is_file()]
        total += max([t - att["started"] for t in times] + [0.0])
    return total


def all_stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds per started stage (stage_seconds), in the order the stages started."""
    stages = (read_json(run_dir / RUN_MARKER) or {}).get("stages") or {}
    return {name: secs for name in stages if (secs := stage_seconds(run_dir, name)) is not None}


def mean_train_loss(log_history: list[dict]) -> float | None:
    """The mean of the per-step training losses of the whole run. The trainer's own `train_loss` covers only the
    steps since its last (re)start; the log history is restored from the checkpoint on resume, so this one spans all."""
    losses = [h["loss"] for h in log_history if "loss" in h and "eval_loss" not in h]
    return sum(losses) / len(losses) if losses else None


# --- a failed start leaves nothing behind ------------------------------------------------------------------------


def worth_resuming(path: Path) -> bool:
    """Whether a run folder holds any stage output (not only what every start writes, nor temporary files)."""
    if not path.is_dir():
        return False
    for f in path.rglob("*"):
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts) and str(rel) not in START_FILES:
            return True
    return False


@contextmanager
def run_folder(path: Path, resume: bool) -> Iterator[Path]:
    """prepare_run_dir; if the block fails on a fresh start before any stage output exists, remove what this start
    created (the folder and the parents it made, or only its files in a folder that was there, empty, before)."""
    made = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        made.append(parent)
    prepare_run_dir(path, resume)
    try:
        yield path
    except BaseException:
        if not resume and distributed.is_main_process() and not worth_resuming(path):
            _remove_start(path, made)
        raise


def _remove_start(path: Path, made: list[Path]) -> None:
    """Remove what a failed fresh start wrote. prepare_run_dir let it start only in a missing or empty folder, so
    all that is inside is its own; a folder that was there before stays (empty), and the parents it made go."""
    if path in made:
        shutil.rmtree(path, ignore_errors=True)
    else:
        for child in path.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    for folder in made[1:] if path in made else made:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's files) or already gone
            break
