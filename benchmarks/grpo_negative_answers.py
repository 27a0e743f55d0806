"""Where the default GRPO recipe's plateau comes from: chain_sum problems with a negative answer ("6 - 9 =").

    python benchmarks/grpo_negative_answers.py benchmarks/results/grpo_default_levers_run \
        benchmarks/results/grpo_loss_grpo_run benchmarks/results/grpo_outcome_filter_run \
        benchmarks/results/grpo_fresh_prompts_run > benchmarks/results/grpo_negative_answers.md

For each committed GRPO run folder: held-out accuracy at every evaluation split by the sign of the gold answer
(from `evals/step-N/samples.jsonl`), and, where the run kept a pass-rate pool, the starting model's sampled pass
rates split the same way (the pool rows are rebuilt from the run's `recipe.yaml` and matched to
`pass_rates/step-00000.json` by prompt key). GRPO only reinforces completions it samples: a class of prompts the
starting model never solves gives it nothing to learn from. Light: reads files and the tokenizer, generates nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def negative(answer) -> bool:
    """Whether a gold answer is a negative number."""
    return str(answer).strip().startswith("-")


def heldout_by_sign(run: Path) -> list[str]:
    """One table row per evaluation: right / total for negative and other golds."""
    rows = []
    for folder in sorted((run / "evals").glob("step-*")):
        samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines() if line.strip()]
        neg = [s for s in samples if negative(s.get("gold_raw", s.get("gold")))]
        other = [s for s in samples if not negative(s.get("gold_raw", s.get("gold")))]
        rows.append(f"| {run.name} | {int(folder.name.split('-')[1])} | {sum(bool(s['correct']) for s in neg)} / "
                    f"{len(neg)} | {sum(bool(s['correct']) for s in other)} / {len(other)} |")
    return rows


def pool_by_sign(run: Path) -> str | None:
    """The step-0 pass-rate estimate split by sign, or None when the run had no pool."""
    from mathtune.config import load_recipe
    from mathtune.data.load import load_splits
    from mathtune.models import load_tokenizer, resolve_recipe_model
    from mathtune.precision import default_home
    from mathtune.train.grpo import pool_rows, to_grpo_rows
    from mathtune.train.grpo_pass_rate import prompt_key

    path = run / "pass_rates" / "step-00000.json"
    if not path.is_file():
        return None
    recipe = load_recipe(str(run / "recipe.yaml"))
    tokenizer = load_tokenizer(resolve_recipe_model(recipe, default_home()))
    rows = pool_rows(recipe, to_grpo_rows(load_splits(recipe, tokenizer).train, recipe.format, tokenizer))
    answers = {prompt_key(r["prompt"]): r["answer"] for r in rows}
    data = json.loads(path.read_text())
    parts = []
    for label, want in (("negative", True), ("other", False)):
        group = [p for p in data["prompts"] if negative(answers[p["key"]]) == want]
        right = sum(s or 0 for p in group for s in p["scores"])
        n = sum(len(p["scores"]) for p in group)
        solved = sum(1 for p in group if p["pass_rate"])
        parts.append(f"{label}: {len(group)} prompts, {right:.0f} of {n} samples right, {solved} prompts solved at "
                     "least once")
    settings = data["settings"]
    return (f"- {run.name}: pool of {len(data['prompts'])} prompts, {settings['k']} samples each at temperature "
            f"{settings['temperature']}; " + "; ".join(parts))


def main(runs: list[str]) -> None:
    print("# GRPO default recipe: negative-answer problems\n")
    print("`python benchmarks/grpo_negative_answers.py " + " ".join(runs) + "`\n")
    print("Held-out greedy accuracy by the sign of the gold answer:\n")
    print("| run | step | negative answers right | other answers right |\n|---|---|---|---|")
    for run in runs:
        print("\n".join(heldout_by_sign(Path(run))))
    print("\nThe starting model's sampled pass rates on the training pool (before any GRPO step):\n")
    for run in runs:
        line = pool_by_sign(Path(run))
        print(line if line else f"- {Path(run).name}: no pass-rate pool")


if __name__ == "__main__":
    main(sys.argv[1:])
