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
