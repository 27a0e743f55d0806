"""The precision decision with mocked processors (fast-bf16, no-bf16, ambiguous), so it holds on any machine."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from mathtune import precision as P
from mathtune.config import Recipe, load_recipe
from mathtune.errors import UserError
from mathtune.runs import update_run_info

SAPPHIRE = P.CpuInfo("Intel Xeon (AMX)", {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "AVX512")
ZEN3 = P.CpuInfo("AMD EPYC Zen3", {"avx2", "fma"}, "AVX2")
ZEN4 = P.CpuInfo("AMD EPYC Zen4", {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, "AVX512")
NO_CPUINFO = P.CpuInfo("arm", set(), "DEFAULT", readable=False)


@pytest.fixture
def probe(monkeypatch):
    """Replace the matmul probe with given figures and count its calls."""
    calls = []

    def install(fp32: float, bf16: float):
        def fake(*_a, **_k):
            calls.append(1)
            return {"fp32": fp32, "bf16": bf16}

        monkeypatch.setattr(P, "matmul_probe", fake)
        return calls

    return install


def test_amx_cpu_gets_bf16_from_its_flags_without_a_probe(probe, tmp_path):
    calls = probe(100.0, 50.0)  # figures that would say fp32: they must not be consulted
    dtype, why = P.decide_precision("auto", "cpu", home=tmp_path, cpu=SAPPHIRE)
    assert dtype == torch.bfloat16 and "amx_bf16" in why and not calls


def test_cpu_without_bf16_instructions_gets_fp32_without_a_probe(probe, tmp_path):
    calls = probe(10.0, 500.0)
    dtype, why = P.decide_precision("auto", "cpu", home=tmp_path, cpu=ZEN3)
    assert dtype == torch.float32 and "no bf16 instructions" in why and not calls


@pytest.mark.parametrize(("fp32", "bf16", "expected"), [(136.1, 347.2, torch.bfloat16), (100.0, 120.0, torch.float32)])
def test_ambiguous_cpu_is_decided_by_the_probe_and_cached(probe, tmp_path, fp32, bf16, expected):
    calls = probe(fp32, bf16)
    dtype, why = P.decide_precision("auto", "cpu", home=tmp_path, cpu=ZEN4)
    assert dtype == expected and f"fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f}" in why and len(calls) == 1
    assert len(list((tmp_path / "precision").glob("probe-*.json"))) == 1
    again, why2 = P.decide_precision("auto", "cpu", home=tmp_path, cpu=ZEN4)
    assert again == expected and "(cached)" in why2 and len(calls) == 1, "the second decision reads the cache"


def test_unknown_flags_are_ambiguous(probe, tmp_path):
    probe(50.0, 200.0)
    assert P.decide_precision("auto", "cpu", home=tmp_path, cpu=NO_CPUINFO)[0] == torch.bfloat16


def test_fp32_and_bf16_requests_are_kept_and_slow_bf16_warns_with_figures(probe, tmp_path, caplog):
    probe(99.3, 1.45)
    assert P.decide_precision("fp32", "cpu", home=tmp_path, cpu=SAPPHIRE)[0] == torch.float32
    with caplog.at_level(logging.WARNING):
        dtype, _ = P.decide_precision("bf16", "cpu", home=tmp_path, cpu=ZEN3)
    assert dtype == torch.bfloat16
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "slow" in warning[0] and "bf16 1.4 GFLOP/s" in warning[0]
    assert "\n" not in warning[0]


def test_unknown_precision_is_one_line():
    with pytest.raises(UserError, match=r"^speed.precision: 'fp16' is not a precision; expected one of: auto"):
        P.decide_precision("fp16", "cpu")
    with pytest.raises(UserError, match=r"speed.precision: expected 'auto', 'fp32' or 'bf16', got 'fp8'"):
        load_recipe(None, ["speed.precision=fp8"])
    assert load_recipe(None).speed.precision == "auto"


def test_cpuinfo_is_parsed_for_model_and_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
                    "processor\t: 1\nmodel name\t: Test CPU\nflags\t\t: fpu\n")
    cpu = P.read_cpu_info(info)
    assert cpu.model == "Test CPU" and cpu.flags == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert cpu.relevant_flags() == ["avx2", "avx512f", "avx512_bf16"]
    assert P.cpu_verdict(cpu)[0] == "ambiguous"
    assert not P.read_cpu_info(tmp_path / "missing").readable


def test_real_probe_measures_both_dtypes_quickly():
    figures = P.matmul_probe(shape=(16, 32, 32), budget_s=0.01)
    assert set(figures) == {"fp32", "bf16"} and all(v > 0 for v in figures.values())


def test_importing_the_module_does_not_import_torch():
    code = "import sys, mathtune.precision; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _recipe(**trainer) -> Recipe:
    return Recipe.model_validate({"data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
                                  "trainer": trainer, "speed": {"precision": "auto"}})


def test_training_args_follow_the_decision_on_cpu(monkeypatch):
    from mathtune.train import sft

    for dtype, bf16 in ((torch.bfloat16, True), (torch.float32, False)):
        monkeypatch.setattr(P, "decide_precision", lambda *a, d=dtype, **k: (d, "mocked"))
        assert sft.training_precision(_recipe(), cuda=False) == ("bf16" if bf16 else "fp32", "mocked")
        args = sft.trainer_args(_recipe(), cuda=False)
        assert args["bf16"] is bf16 and args["gradient_checkpointing"] is False and args["use_cpu"]
    # the recipe's trainer block wins over the decision, and says so
    assert sft.training_precision(_recipe(bf16=False), cuda=False) == ("fp32", "trainer.bf16: false in the recipe")
    assert sft.trainer_args(_recipe(bf16=False), cuda=False)["bf16"] is False
    assert sft.trainer_args(_recipe(), cuda=True).get("bf16") is None, "on CUDA auto keeps TRL's choice"


def test_run_info_gets_the_precision(tmp_path):
    (tmp_path / "run.json").write_text('{"seed": 1, "precision": {"eval": {"dtype": "fp32"}}}')
    update_run_info(tmp_path, precision={"train": {"dtype": "bf16", "why": "amx"}})
    import json

    info = json.loads((tmp_path / "run.json").read_text())
    assert info == {"seed": 1, "precision": {"eval": {"dtype": "fp32"}, "train": {"dtype": "bf16", "why": "amx"}}}
    update_run_info(tmp_path / "nothing", precision={})  # no run folder: nothing written
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(("cpu", "expected"), [(SAPPHIRE, torch.bfloat16), (ZEN3, torch.float32)])
def test_eval_precision_auto_decodes_as_the_processor_allows(monkeypatch, cpu, expected):
    from mathtune.config import EvalConfig
    from mathtune.eval.generate import for_precision, resolve_precision
    from support.tiny import tiny_model

    monkeypatch.setattr(P, "read_cpu_info", lambda: cpu)
    assert EvalConfig(precision="auto").precision == "auto"
    name, why = resolve_precision("auto", "cpu")
    assert name == {torch.bfloat16: "bf16", torch.float32: "fp32"}[expected] and why.startswith(f"auto -> {name}")
    assert resolve_precision("int8", "cpu") == ("int8", "eval.precision: int8"), "explicit choices are kept"
    model = for_precision(tiny_model(), "auto")
    assert {p.dtype for p in model.parameters()} == {expected}
