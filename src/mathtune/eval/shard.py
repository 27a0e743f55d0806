"""Sharded evaluation: `mathtune eval ... --shard i/n` evaluates a deterministic slice of the problems, and
`mathtune eval --merge DIR...` joins the shards into one run folder whose summary equals an unsharded run's.

    mathtune eval --bench gsm8k --shard 0/2 -o runs/gsm8k-s0    # on one machine or GPU
    mathtune eval --bench gsm8k --shard 1/2 -o runs/gsm8k-s1    # on another
    mathtune eval --merge runs/gsm8k-s0 runs/gsm8k-s1 -o runs/gsm8k

Each shard is an ordinary evaluation of its slice with any backend (hf or vLLM), so n GPUs or n CPU machines each
take one; the samples keep their index in the whole set, so merging is sorting and re-summarising. Sampling is seeded
per seed, sample and prompt (eval/generate.py), so a shard draws the completions the unsharded run would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mathtune.errors import UserError
from mathtune.runs import RECIPE_FILE, RUN_MARKER, SAMPLES_FILE, SUMMARY_FILE, read_json, read_samples

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n): shard i (0-based) of n; anything else is a one-line error."""
    m = _SHARD.match(text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise UserError(f"--shard {text}: expected i/n with 0 <= i < n (shard i of n, counted from 0), e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_indices(total: int, index: int, count: int) -> range:
    """The problems of shard `index` of `count`: contiguous blocks whose sizes differ by at most one, the first
    `total % count` blocks one longer (as datasets.Dataset.shard(contiguous=True) splits)."""
    size, extra = divmod(total, count)
    start = index * size + min(index, extra)
    return range(start, start + size + (1 if index < extra else 0))


def _shard_info(folder: Path) -> dict[str, Any]:
    """run.json of one shard folder, checked to be a finished sharded evaluation (one line naming it otherwise)."""
    if not folder.is_dir():
        raise UserError(f"--merge {folder}: no such folder")
    info = read_json(folder / RUN_MARKER)
    if info is None or not (folder / RECIPE_FILE).is_file():
        raise UserError(f"--merge {folder}: not a mathtune eval run (no {RUN_MARKER} or {RECIPE_FILE})")
    if "shard" not in info:
        raise UserError(f"--merge {folder}: not a sharded evaluation (run it with --shard i/n)")
    if not (folder / SUMMARY_FILE).is_file():
        shard = info["shard"]
        raise UserError(f"--merge {folder}: shard {shard['index']}/{shard['count']} is not finished (no {SUMMARY_FILE}); "
                        "finish it with --resume")
    return info


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{key}.")
        elif json.dumps(x, sort_keys=True, default=str) != json.dumps(y, sort_keys=True, default=str):
            out.append(f"{prefix}{key}")
    return out


def check_shards(folders: list[Path]) -> tuple[dict, list[dict]]:
    """The shards' common recipe (as a mapping) and their run.json, after checking they are the n shards of one
    evaluation: same recipe, model and adapter, each shard once, all finished, each with its slice's problems."""
    if not folders:
        raise UserError("--merge: name the shard folders to merge, e.g. --merge runs/s0 runs/s1")
    infos = [_shard_info(f) for f in folders]
    recipes = [yaml.safe_load((f / RECIPE_FILE).read_text()) for f in folders]
    for folder, info, recipe in zip(folders[1:], infos[1:], recipes[1:]):
        keys = _differences(recipes[0], recipe)
        if info.get("adapter") != infos[0].get("adapter"):
            keys.append("adapter")
        if keys:
            raise UserError(f"--merge {folder}: a shard of another evaluation than {folders[0]} "
                            f"(differs in {', '.join(keys)})")
    counts = {info["shard"]["count"] for info in infos}
    if len(counts) > 1:
        raise UserError(f"--merge: the folders are shards of different splits (n = {', '.join(map(str, sorted(counts)))})")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for folder, info in zip(folders, infos):
        index = info["shard"]["index"]
        if index in seen:
            raise UserError(f"--merge: shard {index}/{count} given twice ({seen[index]}, {folder})")
        seen[index] = folder
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise UserError(f"--merge: shard {', '.join(missing)} missing (every shard of the split is needed)")
    return recipes[0], infos


def merged_records(folders: list[Path], infos: list[dict]) -> list[dict]:
    """Every shard's samples, sorted by (problem, sample), checked to lie in their shard's slice of the whole set."""
    samples = [read_samples(f / SAMPLES_FILE, required=("index", "sample")) for f in folders]
    total = sum(read_json(f / SUMMARY_FILE)["n"] for f in folders)
    records = []
    for folder, info, recs in zip(folders, infos, samples):
        expected = shard_indices(total, info["shard"]["index"], info["shard"]["count"])
        got = {r["index"] for r in recs}
        if got != set(expected):
            raise UserError(f"--merge {folder}: its problems are not slice {info['shard']['index']}/"
                            f"{info['shard']['count']} of the {total} problems the shards hold together")
        records += recs
    return sorted(records, key=lambda r: (r["index"], r["sample"]))
