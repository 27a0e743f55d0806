"""The training-speed benchmark's arithmetic: FLOP count, first step left out, results written between markers."""

from __future__ import annotations

from mathtune.train.speed import _matmul_params, summarize, write_results

SMOLLM2_135M = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152}


def test_matmul_params_of_the_default_model_is_about_135m():
    assert 134e6 < _matmul_params(SMOLLM2_135M) < 135e6


def test_summary_leaves_out_the_first_step_and_counts_padding():
    r = {"seconds": [100.0, 2.0, 2.0], "real": [50, 100, 300], "processed": [100, 200, 400]}
    s = summarize(r)
    assert s["tok_s"] == 100.0 and s["s_step"] == 2.0
    assert abs(s["padding"] - (1 - 450 / 700)) < 1e-9
    assert summarize({"seconds": [4.0], "real": [8], "processed": [8]})["tok_s"] == 2.0  # one step: it counts


def test_results_block_is_replaced_and_notes_kept(tmp_path):
    path = tmp_path / "r.md"
    write_results(path, "first")
    path.write_text(path.read_text() + "\nnotes\n")
    write_results(path, "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and text.endswith("notes\n")


def _result(way: str, dtype: str, secs: list[float], losses: list[float]) -> dict:
    return {"way": way, "rep": 1, "steps": len(secs), "batch": 8, "seconds": secs, "real": [100] * len(secs),
            "processed": [100] * len(secs), "losses": losses, "peak_rss_mb": 1000.0, "params_base": 134_500_000,
            "precision": {"dtype": dtype, "why": "amx_bf16 in cpuinfo"}, "gradient_checkpointing": way == "trl-defaults"}


def test_report_names_the_processor_precision_and_loss_gap(monkeypatch):
    from mathtune.train import speed

    monkeypatch.setattr(speed, "machine", lambda: "Test CPU; cpuinfo flags: amx_bf16 yes")
    results = [_result("trl-defaults", "bf16", [2.0, 2.0], [1.31, 1.20]),
               _result("trl-fp32", "fp32", [1.0, 1.0], [1.30, 1.20]),
               _result("mathtune", "bf16", [0.25, 0.25], [1.30, 1.212])]
    bound = {"tokens": 2048, "bf16_tokens": 2048, "float32": 100.0, "bfloat16": 300.0}
    text = speed.report(speed.BenchSpec(model_path="m", rows=[{}] * 16), results, bound, "mathtune bench train", (1, 1))
    assert "Test CPU; cpuinfo flags: amx_bf16 yes" in text and "precision auto chose **bf16**" in text
    row = next(line for line in text.splitlines() if line.startswith("| (c)"))
    assert "| bf16 | off |" in row and "| 8.00x | 4.00x |" in row, row
    assert "mathtune 1.2120 vs plain TRL fp32 1.2000 after step 2 (1.00% apart)" in text


def test_bench_train_without_data_is_one_line(monkeypatch):
    from typer.testing import CliRunner

    from mathtune.cli import app
    from mathtune.cli import bench

    monkeypatch.setattr(bench, "packaged_gsm8k_train", lambda: None)
    out = CliRunner().invoke(app, ["bench", "train", "--no-write"])
    assert out.exit_code == 2 and "--data: no GSM8K train copy is packaged" in out.output
    import inspect

    assert inspect.signature(bench.train_speed).parameters["data"].default.default is None, "no machine path"
