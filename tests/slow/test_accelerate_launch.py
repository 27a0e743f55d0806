"""Two processes under `accelerate launch` (gloo, CPU) train like one process at the same global batch.

`accelerate launch --config_file src/mathtune/recipes/accelerate/cpu_ddp.yaml -m mathtune train RECIPE` on a tiny
random Llama saved to tmp: per-step losses and the adapter match a single process with twice the per-device batch
(within float tolerance), rank 0 alone wrote the run folder, the adapter loads, and `--resume` from the step-2
checkpoint (each rank's RNG state in it) under 2 processes gives the same adapter. About a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "src/mathtune/recipes/accelerate/cpu_ddp.yaml"
sys.path.insert(0, str(ROOT / "tests"))
from support.tiny import save_tiny  # noqa: E402

pytestmark = pytest.mark.slow
STEPS = 4


def recipe(tmp: Path, model: Path, per_device_batch: int) -> Path:
    chain = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    path = tmp / f"tiny-b{per_device_batch}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "model": str(model),
        "data": {"train": {"source": "reasoning_gym", "task": "chain_sum", "size": 16, "seed": 1, "config": chain},
                 "eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 4, "seed": 1000, "config": chain}},
        # no dropout: each rank would draw its own masks; fp32: bf16 rounding would swamp the comparison
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "speed": {"precision": "fp32"},  # padding-free stays on (the default): it must work under DDP
        "trainer": {"max_steps": STEPS, "per_device_train_batch_size": per_device_batch, "save_steps": 2,
                    "learning_rate": 1e-2, "disable_tqdm": True},
    }))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mathtune(tmp: Path, *args: str, processes: int = 1) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MATHTUNE_HOME": str(tmp / "home"), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    if processes == 1:
        cmd = [sys.executable, "-m", "mathtune", *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
               "--num_processes", str(processes), "--main_process_port", str(free_port()), "-m", "mathtune", *args]
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=240, env=env)


def losses(run: Path) -> list[float]:
    history = json.loads((run / "train_log.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h]


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    model = save_tiny(tmp_path / "model")
    one = mathtune(tmp_path, "train", str(recipe(tmp_path, model, 4)), "-o", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = mathtune(tmp_path, "train", str(recipe(tmp_path, model, 2)), "-o", str(tmp_path / "two"), processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "speed.compact_lm_head: off under accelerate launch (MULTI_CPU, 2 processes)" in two.stderr
    assert two.stdout.count("adapter: ") == 2, "both ranks ran the command"

    ref, got = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(ref) == len(got) == STEPS
    assert got == pytest.approx(ref, rel=1e-4), "same examples per step, loss normalised over the global batch"
    assert got[-1] < got[0], "the loss falls (it is a real training run)"
    a, b = adapter(tmp_path / "one"), adapter(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-5)
    ckpt = tmp_path / "two" / "checkpoints" / f"checkpoint-{STEPS}"
    assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), tmp_path / "two" / "adapter")
    with torch.no_grad():
        assert torch.isfinite(loaded(torch.tensor([[5, 6, 7]])).logits).all()
    # rank 0 alone wrote: one run folder (no second timestamped one, nothing left by rank 1), no scratch left over
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} - {"home"} == {"model", "one", "two"}
    assert not [p for p in (tmp_path / "two").rglob(".*")], "no temporary file left in the run folder"

    # a run killed after the step-2 checkpoint, resumed under 2 processes, ends with the same adapter
    run = tmp_path / "two"
    shutil.rmtree(run / "adapter")
    shutil.rmtree(ckpt)
    (run / "train_log.json").unlink()
    resumed = mathtune(tmp_path, "train", str(recipe(tmp_path, model, 2)), "-o", str(run), "--resume", processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for key, value in adapter(run).items():
        torch.testing.assert_close(value, b[key])
