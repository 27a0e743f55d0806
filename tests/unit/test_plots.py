"""Report plots: each writes a valid PNG atomically, skips empty input, and the reports embed what was drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mathtune.config import load_recipe
from mathtune.eval.plots import diagnostic_rates, plot_accuracy, plot_diagnostics, plot_lengths, plot_loss
from mathtune.eval.report import write_eval_report, write_run_report

RATES = {"no_answer_rate": 0.1, "truncation_rate": 0.05, "loop_rate": 0.02, "flip_rate": 0.3,
         "repeated_3gram_ratio": 0.08, "doubt_per_1k_tokens": 4.5}


def assert_png(path: Path, min_size=(200, 150)) -> None:
    with Image.open(path) as img:
        img.verify()  # raises on a truncated or corrupt file
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]  # no temp file left


@pytest.mark.parametrize(
    "draw",
    [
        lambda p: plot_accuracy({"baseline": (0.13, 0.08, 0.21), "tuned": (0.5, 0.4, 0.59), "ungraded": None}, p),
        lambda p: plot_lengths({"baseline": [5, 9, 128, 40], "tuned": [20, 22, 25]}, p, cap=128),
        lambda p: plot_diagnostics({"baseline": RATES, "tuned": {**RATES, "loop_rate": None}}, p),
        lambda p: plot_loss([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5, "eval_loss": 0.6}], p),
    ],
    ids=["accuracy", "lengths", "diagnostics", "loss"],
)
def test_each_plot_writes_a_valid_png(draw, tmp_path):
    path = tmp_path / "sub" / "plot.png"
    assert draw(path) is True
    assert_png(path)


def test_nothing_to_draw_writes_nothing(tmp_path):
    path = tmp_path / "p.png"
    assert plot_accuracy({"a": None}, path) is False
    assert plot_lengths({"a": []}, path) is False
    assert plot_diagnostics({}, path) is False
    assert plot_loss([{"step": 1, "eval_loss": 1.0}], path) is False
    assert not path.exists()


def test_diagnostic_rates_reads_a_summary():
    summary = {"no_answer_rate": 0.1, "truncation_rate": 0.2,
               "diagnostics": {"loop_rate": 0.3, "flip_rate": 0.4, "mean_repeated_3gram_ratio": 0.5,
                               "mean_doubt_per_1k_tokens": 6.0}}
    assert diagnostic_rates(summary) == {"no_answer_rate": 0.1, "truncation_rate": 0.2, "loop_rate": 0.3,
                                         "flip_rate": 0.4, "repeated_3gram_ratio": 0.5, "doubt_per_1k_tokens": 6.0}


def _summary(acc: float) -> dict:
    return {"n": 2, "n_graded": 2, "n_gold_unparseable": 0, "accuracy": acc, "accuracy_low": acc / 2,
            "accuracy_high": min(1.0, acc + 0.2), "no_answer_rate": 0.0, "truncation_rate": 0.5, "mean_tokens": 7.0,
            "diagnostics": {"n": 2, "mean_doubt_per_1k_tokens": 1.0, "mean_repeated_3gram_ratio": 0.1,
                            "loop_rate": 0.0, "flip_rate": 0.5}}


def _samples(folder: Path, tokens: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    recs = [{"index": i, "sample": 0, "question": f"q{i}", "completion": "#### 1", "extracted": "1", "gold": "1",
             "correct": True, "rule": "hash", "reason": "match", "num_tokens": t, "truncated": False,
             "diagnostics": {}} for i, t in enumerate(tokens)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_run_report_embeds_stage_plots(tmp_path):
    recipe = load_recipe(None, [])
    _samples(tmp_path / "baseline", [3, 11])
    _samples(tmp_path / "tuned", [7, 7])
    (tmp_path / "train_log.json").write_text(json.dumps({"log_history": [{"step": 1, "loss": 1.0}]}))
    metrics = {"results": {"baseline": _summary(0.5), "tuned": _summary(1.0)}, "rows": {"train": 4, "eval": 2},
               "seconds": {"train": 60.0}}
    report = write_run_report(tmp_path, recipe, metrics).read_text()
    for name in ["loss.png", "accuracy.png", "lengths.png", "diagnostics.png"]:
        assert f"]({name})" in report
        assert_png(tmp_path / name)


def test_eval_report_embeds_plots(tmp_path):
    _samples(tmp_path, [4, 5, 6])
    report = write_eval_report(tmp_path, load_recipe(None, []), _summary(0.5)).read_text()
    for name in ["accuracy.png", "lengths.png", "diagnostics.png"]:
        assert f"]({name})" in report
        assert_png(tmp_path / name)
