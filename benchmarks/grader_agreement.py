"""Where mathtune's grader, lm-eval's strict-match and flexible-extract, and math-verify disagree, and why.

    python benchmarks/grader_agreement.py        # writes results/grader_agreement.md and .json

Two inputs, both committed:
1. `results/grader_agreement/gsm8k_default_baseline.jsonl`: real completions of the embedded default model
   (SmolLM2-135M-Instruct, untuned, zero-shot chat prompt ending "End with a line '#### ' followed by the final
   answer", greedy) on GSM8K test problems, copied from the GSM8K issue's default run (`mathtune run gsm8k`) with
   the prompt field dropped. Every grader judges each completion; reported: accuracy per grader, pairwise
   agreement, and the count and an example of each way two graders split.
2. `tests/cases/grader_cases.yaml`: the hand-labelled case table (MATH-style, GSM8K, GSM-Hard, SVAMP, ASDiv, the
   issue-16 audit classes). Reported: how often each grader gives the label. The table was written for mathtune's
   rules (it is its test), so mathtune matches it by construction; the other graders' rows show which answer
   styles they do not read, not that they are worse graders on real data.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import yaml

from mathtune.answers import grade_detailed
from mathtune.answers.external import external_verdicts, flexible_extract, strict_extract
from mathtune.eval.metrics import accuracy_ci

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "benchmarks/results/grader_agreement/gsm8k_default_baseline.jsonl"
CASES = ROOT / "tests/cases/grader_cases.yaml"
OUT = ROOT / "benchmarks/results/grader_agreement"
GRADERS = ("mathtune", "strict", "flexible", "math_verify")


TIMEOUT = 60.0  # generous: a verdict here must not depend on how loaded the machine was (none came near it)


def verdicts(completion: str, gold, bench: str) -> dict[str, bool | None]:
    """Every grader's verdict on one completion."""
    return {"mathtune": grade_detailed(completion, gold, bench, timeout=TIMEOUT).correct,
            **external_verdicts(completion, gold, bench, timeout=TIMEOUT)}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def samples_section(records: list[dict]) -> tuple[list[str], dict]:
    """Accuracy per grader and the pairwise splits on real completions."""
    rows = [(r, verdicts(r["completion"], r.get("gold_raw", r["gold"]), r.get("bench", "gsm8k"))) for r in records]
    out = ["## Real completions: the default model on GSM8K test", "",
           f"{len(rows)} completions (`{SAMPLES.relative_to(ROOT)}`).", "",
           "| grader | accuracy (95% Wilson) |", "|---|---|"]
    data: dict = {"n": len(rows), "accuracy": {}, "splits": {}}
    for g in GRADERS:
        ci = accuracy_ci([v[g] for _, v in rows])
        data["accuracy"][g] = [ci.value, ci.low, ci.high]
        out.append(f"| {g} | {_pct(ci.value)} [{_pct(ci.low)}, {_pct(ci.high)}] |")
    out += ["", "| pair | agree | only first right | only second right |", "|---|---|---|---|"]
    examples = []
    for a, b in combinations(GRADERS, 2):
        only_a = [r for r, v in rows if v[a] and not v[b]]
        only_b = [r for r, v in rows if v[b] and not v[a]]
        agree = len(rows) - len(only_a) - len(only_b)
        data["splits"][f"{a}|{b}"] = {"agree": agree, "only_a": len(only_a), "only_b": len(only_b)}
        out.append(f"| {a} vs {b} | {agree} ({_pct(agree / len(rows))}) | {len(only_a)} | {len(only_b)} |")
        for who, group in ((a, only_a), (b, only_b)):
            if group and a == "mathtune":
                examples.append((f"only {who} right ({a} vs {b})", group[0]))
    out += ["", "### One example of each split with mathtune", ""]
    for title, r in examples:
        tail = r["completion"][-300:].replace("```", "'''")
        out += [f"**{title}**: gold `{r['gold']}`, mathtune extracted `{grade_detailed(r['completion'], r['gold']).extracted}`,"
                f" strict `{strict_extract(r['completion'])}`, flexible `{flexible_extract(r['completion'])}`", "",
                "```", tail, "```", ""]
    return out, data


def cases_section() -> tuple[list[str], dict]:
    """How often each grader gives the hand label on the case table, overall and per issue-16 class."""
    cases = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    hits: dict[str, Counter] = {g: Counter() for g in GRADERS}
    totals: Counter = Counter()
    for case in cases:
        if case["expected"] is None:
            continue
        m = re.match(r"(\d+) ", case["note"])
        group = f"issue-16 class {m.group(1)}" if m else "earlier cases"
        totals[group] += 1
        totals["all"] += 1
        v = verdicts(case["completion"], case["gold"], case.get("bench", "auto"))
        for g in GRADERS:
            if v[g] is case["expected"]:
                hits[g][group] += 1
                hits[g]["all"] += 1
    groups = ["all", "earlier cases", *sorted((k for k in totals if k.startswith("issue")), key=lambda k: int(k.split()[-1]))]
    out = ["## Hand-labelled cases (`tests/cases/grader_cases.yaml`)", "",
           "Cases whose label agrees with each grader's verdict (gold-unreadable cases left out).", "",
           "| cases | n | " + " | ".join(GRADERS) + " |", "|---" * (len(GRADERS) + 2) + "|"]
    for grp in groups:
        out.append(f"| {grp} | {totals[grp]} | " + " | ".join(f"{hits[g][grp]}" for g in GRADERS) + " |")
    return out, {"totals": dict(totals), "hits": {g: dict(c) for g, c in hits.items()}}


def main() -> None:
    """Grade both inputs with every grader and write the markdown and JSON results."""
    records = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines()]
    sample_md, sample_data = samples_section([r for r in records if r["sample"] == 0])
    case_md, case_data = cases_section()
    md = ["# Grader agreement", "", "Command: `python benchmarks/grader_agreement.py`.", "", *sample_md, *case_md]
    (OUT.parent / "grader_agreement.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (OUT.parent / "grader_agreement.json").write_text(json.dumps({"samples": sample_data, "cases": case_data}, indent=2))
    print("\n".join(md))


if __name__ == "__main__":
    main()
