"""Which process this is when a command runs under `accelerate launch` (or torchrun), and the few collectives mathtune
needs around TRL's trainers: rank 0 alone writes the run folder, every rank agrees on its path and on the data.

The process group itself is accelerate's (PartialState, as the Trainer uses it); nothing here is a distributed layer
of its own. A plain `mathtune ...` is one process and every function here is then a constant or a no-op.

    accelerate launch --config_file src/mathtune/recipes/accelerate/ddp.yaml -m mathtune train RECIPE
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from typing import Any, Iterator

from mathtune.errors import UserError


def launched() -> bool:
    """Whether a launcher started more than one process. The launcher's contract is the WORLD_SIZE variable (set by
    torchrun, which `accelerate launch` uses); reading it here, and not constructing accelerate's state, keeps a
    single-process run exactly as it was (the Trainer sets that state up its own way, e.g. with use_cpu)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _state():
    from accelerate import PartialState

    return PartialState()


def num_processes() -> int:
    """Processes of the launched job (1 without a launcher)."""
    return _state().num_processes if launched() else 1


def process_index() -> int:
    """This process's rank (0 without a launcher)."""
    return _state().process_index if launched() else 0


def local_process_index() -> int:
    """This process's rank on its machine: the GPU it owns (0 without a launcher)."""
    return _state().local_process_index if launched() else 0


def is_main_process() -> bool:
    """Whether this process writes the run folder (rank 0, or the only process)."""
    return process_index() == 0


def distributed_type() -> str:
    """accelerate's name for the launched setup: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED, ..."""
    return str(_state().distributed_type.value) if launched() else "NO"


def wait_for_everyone() -> None:
    """Barrier across processes (nothing without a launcher)."""
    if launched():
        _state().wait_for_everyone()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (a model conversion, a cache fill), then the others, which find it done."""
    if not launched():
        yield
        return
    with _state().main_process_first():
        yield


def from_main(value: Any) -> Any:
    """Rank 0's `value` on every process (a run folder's timestamped name must be one name)."""
    if not launched():
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def fingerprint(rows: list[dict]) -> str:
    """A short hash of rows (their JSON, in order): equal on every rank when every rank curated the same data."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def check_same_data(rows: list[dict], what: str) -> None:
    """Fail (one line, on every rank) unless every process built the same `rows`: DDP shards one seeded dataset by
    rank, so ranks that curated different rows would train on an unintended mix."""
    if not launched():
        return
    from accelerate.utils import gather_object

    mine = fingerprint(rows)
    seen = gather_object([mine])
    if len(set(seen)) > 1:
        raise UserError(f"{what}: the processes built different rows (fingerprints {', '.join(seen)}); "
                        "a data source that is not seeded cannot be trained on under accelerate launch")
