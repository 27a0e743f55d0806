"""Run folders: what produced a run (recipe, version, git SHA, seed), atomic writes, and resume."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mathtune.errors import UserError

RUN_MARKER = "run.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write `data` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


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
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_run_info(path: Path, recipe_yaml: str, seed: int, command: str) -> None:
    """Save the resolved recipe and what produced the run (version, git SHA, seed, command, start time)."""
    from mathtune import __version__

    atomic_write_text(path / "recipe.yaml", recipe_yaml)
    info = read_json(path / RUN_MARKER) or {}
    info.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%S"))
    info.update(command=command, mathtune_version=__version__, git_sha=git_sha(), seed=seed)
    atomic_write_json(path / RUN_MARKER, info)


def default_run_dir(base: Path, name: str) -> Path:
    """A new, timestamped folder under `base` for a run called `name`."""
    return base / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
