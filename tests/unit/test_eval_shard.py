"""Sharded evaluation: `mathtune eval --shard i/n` slices, `mathtune eval --merge DIR...` gives the unsharded run's
summary and samples on the tiny model; bad input is one line, exit 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathtune.errors import UserError
from mathtune.eval.shard import parse_shard, shard_indices

from test_cli import GSM8K_FIXTURE, mathtune  # noqa: E402  (tests/unit is on sys.path under pytest)

# sampling (2 per problem at temperature 0.8) so pass@k / maj@k are compared too; 5 problems in 3 uneven shards
EVAL = ["--bench", "gsm8k", "--path", str(GSM8K_FIXTURE), "--limit", "5", "--max-new-tokens", "6", "--batch-size", "2",
        "--samples", "2", "--temperature", "0.8"]


@pytest.mark.parametrize("total, count", [(5, 3), (7, 2), (2, 4), (0, 3), (9, 1)])
def test_shards_cover_every_problem_once_in_order(total, count):
    slices = [list(shard_indices(total, i, count)) for i in range(count)]
    assert sum(slices, []) == list(range(total))
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


@pytest.mark.parametrize("text", ["3/2", "2/2", "1/0", "a/b", "1", "-1/2", "0/"])
def test_bad_shard_is_one_line(text):
    with pytest.raises(UserError, match=rf"--shard {text}: expected i/n with 0 <= i < n"):
        parse_shard(text)


def samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_sharded_then_merged_equals_unsharded(tmp_path, tiny_checkpoint):
    model = ["--model", str(tiny_checkpoint)]
    full = mathtune("eval", *model, *EVAL, "-o", str(tmp_path / "full"), cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    for i in range(3):
        proc = mathtune("eval", *model, *EVAL, "--shard", f"{i}/3", "-o", str(tmp_path / f"s{i}"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert [len({r["index"] for r in samples(tmp_path / f"s{i}")}) for i in range(3)] == [2, 2, 1]
    assert json.loads((tmp_path / "s1" / "run.json").read_text())["shard"] == {"index": 1, "count": 3}

    shards = [str(tmp_path / f"s{i}") for i in (2, 0, 1)]  # any order
    merged = mathtune("eval", "--merge", *shards, "-o", str(tmp_path / "merged"), cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr[-2000:]
    want = json.loads((tmp_path / "full" / "summary.json").read_text())
    got = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert got == want and got["n"] == 5 and "pass@2" in got
    assert samples(tmp_path / "merged") == samples(tmp_path / "full")
    assert (tmp_path / "merged" / "report.md").is_file()
    assert json.loads((tmp_path / "merged" / "run.json").read_text())["merged_from"] == shards

    # bad input: one line naming it, exit 2, no output folder
    other = mathtune("eval", *model, *EVAL, "--seed", "7", "--shard", "1/3", "-o", str(tmp_path / "t1"), cwd=tmp_path)
    assert other.returncode == 0, other.stderr[-2000:]
    adapted = tmp_path / "t2"
    (adapted).mkdir()
    (adapted / "run.json").write_text(json.dumps({**json.loads((tmp_path / "s1" / "run.json").read_text()),
                                                   "adapter": "/elsewhere/adapter"}))
    for name in ("recipe.yaml", "samples.jsonl", "summary.json"):
        (adapted / name).write_text((tmp_path / "s1" / name).read_text())
    cases = [
        ([shards[1], str(tmp_path / "t1"), shards[0]], "differs in eval.seed"),
        ([shards[1], str(adapted), shards[0]], "differs in adapter"),
        ([shards[1], shards[2]], "--merge: shard 2/3 missing"),
        ([shards[1], shards[1], shards[2]], "--merge: shard 0/3 given twice"),
        ([shards[1], str(tmp_path / "nowhere")], f"--merge {tmp_path / 'nowhere'}: no such folder"),
        ([shards[1], str(tmp_path / "full")], "not a sharded evaluation"),
    ]
    for folders, expected in cases:
        proc = mathtune("eval", "--merge", *folders, "-o", str(tmp_path / "bad"), cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr[-1500:]
        assert not (tmp_path / "bad").exists()
    proc = mathtune("eval", *model, *EVAL, "--shard", "3/2", "-o", str(tmp_path / "bad"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --shard 3/2: expected i/n with 0 <= i < n " \
        "(shard i of n, counted from 0), e.g. 0/4"
    assert not (tmp_path / "bad").exists()
