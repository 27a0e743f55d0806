"""Ablation grids: `mathtune sweep RECIPE --grid lora.r=8,16,64 --grid trainer.learning_rate=1e-4,2e-4`.

Every point of the grid is one `mathtune run RECIPE --set ...` in its own process (so a scheduler could spread them;
here they run one after another) writing its own run folder under SWEEP/points/. A point whose metrics.json exists is
finished and skipped when the sweep is run again; one that stopped half-way is continued with --resume. The chosen
metrics of every point end in one table (sweep.md, sweep.csv) and one plot (sweep.png).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mathtune.errors import UserError
from mathtune.runs import METRICS_FILE, RUN_MARKER, TRAIN_LOG, atomic_write_json, atomic_write_text, read_json, save_png

log = logging.getLogger("mathtune")
# (command, log file) -> exit code; the default runs it as a child process. Tests pass a fake.
JobRunner = Callable[[list[str], Path], int]


@dataclass
class Point:
    """One grid point: its overrides and run folder."""

    name: str
    overrides: dict[str, str]
    folder: Path


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """`key=v1,v2,...` per --grid -> [(key, [v1, v2, ...])]; values stay text and become `--set key=v`."""
    grid = []
    for item in items:
        key, _, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not key.strip() or not vals:
            raise UserError(f"--grid {item!r}: expected key=v1,v2,... e.g. --grid lora.r=8,16,64")
        if key.strip() in {k for k, _ in grid}:
            raise UserError(f"--grid {key.strip()}: given twice; put all its values in one --grid")
        grid.append((key.strip(), vals))
    if not grid:
        raise UserError("sweep: no --grid given (e.g. --grid lora.r=8,16,64)")
    return grid


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def grid_points(grid: list[tuple[str, list[str]]], folder: Path) -> list[Point]:
    """The Cartesian product of the grid, each point with a readable folder name (`03-r=16-learning_rate=1e-4`)."""
    points = []
    for i, combo in enumerate(itertools.product(*(vals for _, vals in grid))):
        overrides = {k: v for (k, _), v in zip(grid, combo)}
        label = "-".join(f"{k.rsplit('.', 1)[-1]}={_slug(v)}" for k, v in overrides.items())
        points.append(Point(f"{i:02d}-{label}", overrides, folder / "points" / f"{i:02d}-{label}"))
    return points


def point_command(recipe: str | None, base_sets: list[str], point: Point) -> list[str]:
    """The `mathtune run` command of one point (with --resume when its folder holds an unfinished run)."""
    cmd = [sys.executable, "-m", "mathtune", "run"] + ([recipe] if recipe else [])
    for item in [*base_sets, *(f"{k}={v}" for k, v in point.overrides.items())]:
        cmd += ["--set", item]
    cmd += ["--output", str(point.folder)]
    if (point.folder / RUN_MARKER).is_file():
        cmd.append("--resume")
    return cmd


def subprocess_runner(cmd: list[str], log_file: Path) -> int:
    """Run one job as a child process, its output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode


def metric_value(run_dir: Path, metric: str) -> float | None:
    """A metric of a finished run: `accuracy` (tuned), `baseline.accuracy`, `tuned.diagnostics.loop_rate`,
    `train_loss` (mean over every step, resumes included), `final_loss` (last logged), `train_seconds` (every
    attempt's); None when absent."""
    metrics = read_json(run_dir / METRICS_FILE) or {}
    if metric == "train_loss":
        return metrics.get("train_loss")
    if metric == "final_loss":
        history = (read_json(run_dir / TRAIN_LOG) or {}).get("log_history", [])
        losses = [h["loss"] for h in history if "loss" in h]
        return losses[-1] if losses else None
    if metric == "train_seconds":
        return metrics.get("seconds", {}).get("train")
    parts = metric.split(".")
    node = metrics.get("results", {})
    if parts[0] not in node:
        parts = ["tuned", *parts]
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _cell(run_dir: Path, metric: str) -> str:
    value = metric_value(run_dir, metric)
    if value is None:
        return ""
    low, high = (metric_value(run_dir, f"{metric}_{side}") for side in ("low", "high"))
    if metric.endswith("accuracy"):
        return f"{value:.1%} [{low:.1%}, {high:.1%}]" if low is not None and high is not None else f"{value:.1%}"
    return f"{value:.4g}"


def write_table(folder: Path, grid, points: list[Point], status: dict[str, str], metrics: list[str]) -> str:
    """sweep.md and sweep.csv: one row per point (its grid values, status and metrics); returns the markdown."""
    keys = [k for k, _ in grid]
    head = ["point", *keys, "status", *metrics]
    rows = [[p.name, *(p.overrides[k] for k in keys), status[p.name], *(_cell(p.folder, m) for m in metrics)]
            for p in points]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(head)
    for p in points:  # raw numbers in the CSV
        writer.writerow([p.name, *(p.overrides[k] for k in keys), status[p.name],
                         *("" if (v := metric_value(p.folder, m)) is None else v for m in metrics)])
    atomic_write_text(folder / "sweep.csv", buf.getvalue())
    atomic_write_text(folder / "sweep.md", "\n".join(md) + "\n")
    return "\n".join(md)


def write_plot(folder: Path, grid, points: list[Point], metrics: list[str]) -> Path:
    """sweep.png: each metric against the first grid key, one line per combination of the other keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, values = grid[0]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        series: dict[str, list[tuple[int, float]]] = {}
        for p in points:
            v = metric_value(p.folder, metric)
            if v is None:
                continue
            rest = ", ".join(f"{k.rsplit('.', 1)[-1]}={p.overrides[k]}" for k, _ in grid[1:]) or metric
            series.setdefault(rest, []).append((values.index(p.overrides[first]), v))
        for label, pts in series.items():
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(first)
        ax.set_title(metric)
        if series:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, folder / "sweep.png")


def run_sweep(recipe: str | None, base_sets: list[str], grid, folder: Path, metrics: list[str],
              runner: JobRunner = subprocess_runner) -> tuple[str, dict[str, str]]:
    """Run every unfinished point, then write the table and plot; returns (markdown table, status per point)."""
    points = grid_points(grid, folder)
    atomic_write_json(folder / "sweep.json", {
        "recipe": recipe, "set": base_sets, "grid": grid, "metrics": metrics,
        "points": [{"name": p.name, "overrides": p.overrides} for p in points],
    })
    status: dict[str, str] = {}
    for i, p in enumerate(points, 1):
        if (p.folder / METRICS_FILE).is_file():
            status[p.name] = "done (kept)"
            log.info("sweep %d/%d %s: finished before, skipped", i, len(points), p.name)
            continue
        log.info("sweep %d/%d %s", i, len(points), p.name)
        code = runner(point_command(recipe, base_sets, p), folder / "logs" / f"{p.name}.log")
        done = code == 0 and (p.folder / METRICS_FILE).is_file()
        status[p.name] = "done" if done else f"failed (exit {code}, see logs/{p.name}.log)"
    table = write_table(folder, grid, points, status, metrics)
    write_plot(folder, grid, points, metrics)
    return table, status
