"""Run folders: what produced a run (recipe, version, git SHA, seed), atomic writes, and resume."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mathtune.errors import UserError

RUN_MARKER = "run.json"


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it replaces `path` in one rename.

    Readers never see half a file, and an interrupted write leaves the old file as it was. The file gets the
    permissions a plain `open()` would give (mkstemp's are 0600).
    """
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


def update_run_info(path: Path, **fields: Any) -> None:
    """Add `fields` to the run's run.json (merging one level into dict values); nothing when there is no run.json."""
    info = read_json(path / RUN_MARKER)
    if info is None:
        return
    for key, value in fields.items():
        info[key] = {**info[key], **value} if isinstance(value, dict) and isinstance(info.get(key), dict) else value
    atomic_write_json(path / RUN_MARKER, info)


def default_run_dir(base: Path, name: str) -> Path:
    """A new, timestamped folder under `base` for a run called `name`."""
    return base / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
