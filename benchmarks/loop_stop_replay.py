"""What `eval.stop_on_loop` would have changed: replay its check on completions generated without it.

    flock /tmp/mathtune-cpu.lock python benchmarks/loop_stop_replay.py \
        benchmarks/results/gsm8k_default/baseline benchmarks/results/gsm8k_default/tuned      # seconds

Each stored completion is re-tokenized with the default model's tokenizer and cut at the first length where the
generator's own stop test (`eval.generate.halts`, checked every LOOP_CHECK_EVERY tokens) fires; the cut text is graded
again with mathtune's grader. Greedy decoding makes this exact: with the check on, generation would have produced the
same tokens up to that point and stopped there. Writes benchmarks/results/loop_stop_replay.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mathtune.answers import grade_detailed
from mathtune.eval.generate import LOOP_CHECK_EVERY, GenerationConfig, halts
from mathtune.models import load_tokenizer, resolve_model
from mathtune.precision import default_home
from mathtune.runs import atomic_write_text

OUT = Path(__file__).resolve().parent / "results" / "loop_stop_replay.md"


def replay(rows: list[dict], tokenizer) -> dict:
    """Counts for one run: rows cut, tokens saved, verdicts changed each way, cut rows that had ended on their own."""
    cfg = GenerationConfig(stop_on_loop=True)
    out = {"rows": len(rows), "tokens": sum(r["num_tokens"] for r in rows), "cut": 0, "saved": 0,
           "right_to_wrong": 0, "wrong_to_right": 0, "cut_finished": 0, "cut_finished_changed": 0}
    for r in rows:
        ids = tokenizer(r["completion"], add_special_tokens=False)["input_ids"]
        n = next((n for n in range(LOOP_CHECK_EVERY, len(ids) + 1, LOOP_CHECK_EVERY)
                  if halts(ids[:n], tokenizer, cfg)), None)
        if n is None:
            continue
        now = bool(grade_detailed(tokenizer.decode(ids[:n], skip_special_tokens=True),
                                  r.get("gold_raw", r["gold"]), r.get("bench", "gsm8k")).correct)
        out["cut"] += 1
        out["saved"] += max(0, r["num_tokens"] - n)
        out["right_to_wrong"] += bool(r["correct"]) and not now
        out["wrong_to_right"] += now and not r["correct"]
        out["cut_finished"] += not r["truncated"]
        out["cut_finished_changed"] += not r["truncated"] and now != bool(r["correct"])
    return out


def main(folders: list[str]) -> None:
    tokenizer = load_tokenizer(resolve_model("default", default_home()))
    lines = ["# eval.stop_on_loop replayed on stored completions", "",
             f"`python benchmarks/loop_stop_replay.py {' '.join(folders)}` (greedy completions generated without the "
             f"loop stop; the check runs every {LOOP_CHECK_EVERY} tokens as in generation).", "",
             "| run | rows | cut by the loop check | tokens saved | right -> wrong | wrong -> right | cut rows that "
             "had ended on their own (verdict changed) |", "|---|---|---|---|---|---|---|"]
    for folder in folders:
        rows = [json.loads(line) for line in (Path(folder) / "samples.jsonl").open(encoding="utf-8")]
        c = replay(rows, tokenizer)
        lines.append(f"| `{folder}` | {c['rows']} | {c['cut']} | {c['saved']} of {c['tokens']} "
                     f"({100 * c['saved'] / c['tokens']:.1f}%) | {c['right_to_wrong']} | {c['wrong_to_right']} | "
                     f"{c['cut_finished']} ({c['cut_finished_changed']}) |")
    atomic_write_text(OUT, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
