"""Compare evaluations on the same problems: accuracy, paired significance, diagnostic deltas, disagreements.

    mathtune compare runs/eval-a runs/eval-b [--output DIR] [--examples K]
    mathtune compare runs/default-20261123-171951          # a `mathtune run` folder: its baseline vs tuned

An evaluation is a folder with `samples.jsonl` (and `summary.json` once finished) as `mathtune eval` writes it, or
a stage folder (`baseline/`, `tuned/`, `baseline-NAME/` for an extra eval set) of a `mathtune run` folder; a run
folder stands for its `baseline/` and `tuned/` (else for every subfolder holding a samples.jsonl).
Evaluations are paired by question text (indexes differ between benchmarks and files), restricted to the problems
all of them share; the first evaluation is the reference every other one is compared with.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, Sequence

from mathtune.errors import UserError
from mathtune.eval.metrics import accuracy_ci, completion_rates, mcnemar, paired_bootstrap
from mathtune.runs import SAMPLES_FILE, SUMMARY_FILE, read_samples  # noqa: F401  (names of the run folder)

REQUIRED_FIELDS = ("index", "sample", "question", "gold", "extracted", "correct", "completion", "num_tokens")
STAGE_ORDER = ("baseline", "tuned")  # stages of a `mathtune run` folder, reference first
BOOTSTRAP_RESAMPLES = 10000
BOOTSTRAP_SEED = 0  # fixed, so the same runs always print the same interval
EXCERPT_CHARS = 320

# (key, label, kind) of the per-run rows; kind "pct" is a share shown in %, its delta in points.
METRICS = (
    ("no_answer_rate", "no answer found", "pct"),
    ("truncation_rate", "truncated (hit max tokens)", "pct"),
    ("loop_stop_rate", "stopped in a loop (eval.stop_on_loop)", "pct"),
    ("calculator_rate", "with a calculator note <<a*b=c>>", "pct"),
    ("mean_tokens", "tokens per completion", "num"),
    ("doubt_per_1k_tokens", "doubt markers per 1k tokens", "num"),
    ("repeated_3gram_ratio", "repeated 3-gram ratio", "num"),
    ("flip_rate", "completions with an answer flip", "pct"),
    ("loop_rate", "completions ending in a loop", "pct"),
)


@dataclass
class Evaluation:
    """One evaluation's records grouped by problem (question text), with what produced it."""

    label: str
    folder: Path
    problems: dict[str, list[dict]]  # question key -> that problem's samples, sample 0 first
    finished: bool  # summary.json is there
    command: str | None = None
    max_new_tokens: int | None = None
    n_records: int = 0


def problem_key(question: str) -> str:
    """Pairing key: the question with whitespace collapsed (a re-rendered file may wrap lines differently)."""
    return " ".join(question.split())


def read_records(path: Path) -> list[dict]:
    """Every record of a samples.jsonl (runs.read_samples: a torn last line from a kill is dropped), each with the
    fields compare needs, of the types it needs; anything else is a one-line error naming the file and line."""
    out = read_samples(path, required=REQUIRED_FIELDS)
    for n, rec in enumerate(out, 1):
        bad = next((k for k in ("index", "sample", "num_tokens") if type(rec[k]) is not int), None)
        if bad:
            raise UserError(f"{path}: record {n}: field '{bad}' should be an integer, got {rec[bad]!r}")
        if rec["correct"] not in (True, False, None):
            raise UserError(f"{path}: record {n}: field 'correct' should be true, false or null, got {rec['correct']!r}")
    if not out:
        raise UserError(f"{path}: no samples in the file")
    return out


def _eval_folders(path: Path) -> list[Path]:
    """The evaluation folders a command-line argument stands for."""
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if path.is_file():
        if path.name == SAMPLES_FILE:
            return [path.parent]
        raise UserError(f"{path}: not a folder (expected a folder written by `mathtune eval` or `mathtune run`)")
    if (path / SAMPLES_FILE).is_file():
        return [path]
    stages = [p for p in path.iterdir() if p.is_dir() and (p / SAMPLES_FILE).is_file()]
    if not stages:
        raise UserError(f"{path}: no {SAMPLES_FILE} here or in a stage folder (expected a folder written by "
                        "`mathtune eval`, or a `mathtune run` folder with baseline/ and tuned/)")
    main = [p for name in STAGE_ORDER for p in stages if p.name == name]
    # A run's extra eval sets (`baseline-NAME`, `tuned-NAME`) hold other problems, so a run folder stands for its main
    # set only; name the stage folders to compare an extra set. Folders of other kinds (GRPO's `step-00020`, ...)
    # are all taken, in name order.
    return main or sorted(stages, key=lambda p: p.name)


def _labels(folders: Sequence[Path]) -> list[str]:
    """Short unique labels: the folder name, else parent/name, else numbered."""
    labels = [f.resolve().name for f in folders]
    if len(set(labels)) < len(labels):
        labels = ["/".join(f.resolve().parts[-2:]) for f in folders]
    if len(set(labels)) < len(labels):
        labels = [f"{lab}#{i + 1}" for i, lab in enumerate(labels)]
    return labels


def _provenance(folder: Path) -> tuple[str | None, int | None]:
    """The command (run.json) and max_new_tokens (recipe.yaml) of the eval folder, or of its run folder."""
    import yaml

    command = max_tokens = None
    for where in (folder, folder.parent):
        try:
            if command is None and (where / "run.json").is_file():
                command = json.loads((where / "run.json").read_text()).get("command")
            if max_tokens is None and (where / "recipe.yaml").is_file():
                max_tokens = (yaml.safe_load((where / "recipe.yaml").read_text()) or {}).get("eval", {}).get(
                    "max_new_tokens")
        except (ValueError, OSError, AttributeError, yaml.YAMLError):
            continue  # provenance is a courtesy in the report; a damaged file must not block the comparison
    return command, max_tokens if isinstance(max_tokens, int) else None


def load_evaluation(folder: Path, label: str) -> Evaluation:
    """Read one evaluation folder; a question asked under two indexes keeps the first index's samples."""
    records = read_records(folder / SAMPLES_FILE)
    by_index: dict[Any, list[dict]] = {}
    for rec in records:
        by_index.setdefault(rec["index"], []).append(rec)
    problems: dict[str, list[dict]] = {}
    for index in sorted(by_index):
        key = problem_key(str(by_index[index][0]["question"]))
        problems.setdefault(key, sorted(by_index[index], key=lambda r: r["sample"]))
    command, max_tokens = _provenance(folder)
    return Evaluation(label, folder, problems, (folder / SUMMARY_FILE).is_file(), command, max_tokens, len(records))


def load_evaluations(paths: Sequence[Path]) -> list[Evaluation]:
    """All evaluations named on the command line (a run folder expands to its stages), at least two."""
    folders = [f for p in paths for f in _eval_folders(Path(p))]
    if len(folders) < 2:
        raise UserError(f"compare needs at least two evaluations; {' '.join(map(str, paths))} holds only {folders[0]}")
    return [load_evaluation(f, lab) for f, lab in zip(folders, _labels(folders))]


def shared_problems(evals: Sequence[Evaluation]) -> list[str]:
    """Question keys every evaluation has, in the first evaluation's order."""
    common = set(evals[0].problems)
    for ev in evals[1:]:
        common &= set(ev.problems)
    if not common:
        names = ", ".join(f"{ev.label} ({len(ev.problems)})" for ev in evals)
        raise UserError(f"no problem is shared by {names} (paired by question text); compare evaluations of the "
                        "same problems")
    return [k for k in evals[0].problems if k in common]


def _share(flags) -> float | None:
    flags = [bool(f) for f in flags]
    return sum(flags) / len(flags) if flags else None


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def run_stats(ev: Evaluation, keys: Sequence[str]) -> dict:
    """Accuracy (first sample, Wilson 95%) and rates over every completion of the shared problems."""
    firsts = [ev.problems[k][0] for k in keys]
    graded = [r["correct"] for r in firsts if r["correct"] is not None]
    recs = [r for k in keys for r in ev.problems[k]]
    diags = [r.get("diagnostics") or {} for r in recs]
    out: dict[str, Any] = {"n_problems": len(keys), "n_graded": len(graded), "n_completions": len(recs)}
    if graded:
        ci = accuracy_ci(graded)
        out.update(accuracy=ci.value, accuracy_low=ci.low, accuracy_high=ci.high)
    out.update(completion_rates(recs))  # the summary's own definitions (eval/metrics.py)
    out.update(
        doubt_per_1k_tokens=_mean(d.get("doubt_per_1k_tokens") for d in diags),
        repeated_3gram_ratio=_mean(d.get("repeated_3gram_ratio") for d in diags),
        flip_rate=_share((d.get("answer_flips") or 0) >= 1 for d in diags),
        loop_rate=_share(d.get("loop") for d in diags),
    )
    return out


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start and the end of a completion (the end holds the answer), at most about `limit` characters."""
    text = text.strip()
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half].rstrip() + " [...] " + text[-half:].lstrip()


def _example(ra: dict, rb: dict) -> dict:
    return {
        "question": ra["question"], "gold": ra["gold"],
        "a_extracted": ra["extracted"], "b_extracted": rb["extracted"],
        "a_excerpt": excerpt(str(ra["completion"])), "b_excerpt": excerpt(str(rb["completion"])),
    }


def compare_pair(a: Evaluation, b: Evaluation, keys: Sequence[str], examples: int) -> dict:
    """b against a on their shared problems graded in both: difference (b - a), bootstrap CI, McNemar, examples."""
    pairs = [(k, a.problems[k][0], b.problems[k][0]) for k in keys]
    pairs = [(k, ra, rb) for k, ra, rb in pairs if ra["correct"] is not None and rb["correct"] is not None]
    out: dict[str, Any] = {"a": a.label, "b": b.label, "n_paired": len(pairs)}
    if pairs:
        xa = [bool(ra["correct"]) for _, ra, _ in pairs]
        xb = [bool(rb["correct"]) for _, _, rb in pairs]
        bs = paired_bootstrap(xa, xb, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        mc = mcnemar(xa, xb)
        out.update(diff=bs.diff, diff_low=bs.low, diff_high=bs.high, bootstrap_p=bs.p_value,
                   a_only=mc.b10, b_only=mc.b01, mcnemar_p=mc.p_value, mcnemar_method=mc.method)
    out["a_only_examples"] = [_example(ra, rb) for _, ra, rb in pairs if ra["correct"] and not rb["correct"]][:examples]
    out["b_only_examples"] = [_example(ra, rb) for _, ra, rb in pairs if rb["correct"] and not ra["correct"]][:examples]
    return out


@dataclass
class Comparison:
    """What compare.json holds (`data`) and the completion lengths the histogram needs."""

    data: dict
    lengths: dict[str, list[int]]
    max_new_tokens: int | None


def compare(paths: Sequence[Path], examples: int = 3) -> Comparison:
    """Load, pair and compare the evaluations; the first one is the reference."""
    evals = load_evaluations(paths)
    keys = shared_problems(evals)
    stats = {ev.label: run_stats(ev, keys) for ev in evals}
    comparisons = [compare_pair(evals[0], ev, keys, examples) for ev in evals[1:]]
    for cmp in comparisons:
        sa, sb = stats[cmp["a"]], stats[cmp["b"]]
        cmp["deltas"] = {k: None if sa[k] is None or sb[k] is None else sb[k] - sa[k] for k, _, _ in METRICS}
    data = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "pairing": "paired by question text, whitespace collapsed; accuracy is on each problem's first sample, the "
        "other rates over every completion of the shared problems",
        "shared_problems": len(keys),
        "runs": [
            {"label": ev.label, "folder": str(ev.folder), "command": ev.command, "finished": ev.finished,
             "n_problems": len(ev.problems), "n_completions": ev.n_records}
            for ev in evals
        ],
        "stats": stats,
        "comparisons": comparisons,
    }
    lengths = {ev.label: [r["num_tokens"] for k in keys for r in ev.problems[k]] for ev in evals}
    caps = {ev.max_new_tokens for ev in evals}
    return Comparison(data, lengths, caps.pop() if len(caps) == 1 else None)


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if kind == "pct" else f"{value:.3g}"


def _fmt_delta(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f} pts" if kind == "pct" else f"{value:+.3g}"


def _accuracy_cell(s: dict) -> str:
    if "accuracy" not in s:
        return "n/a"
    return f"{100 * s['accuracy']:.1f}% [{100 * s['accuracy_low']:.1f}, {100 * s['accuracy_high']:.1f}]"


def _diff_cell(c: dict) -> str:
    if "diff" not in c:
        return "n/a"
    return f"{100 * c['diff']:+.1f} pts [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}]"


def comparison_table(data: dict) -> str:
    """Markdown table: one column per evaluation, then one per difference from the first (b - a)."""
    stats, cmps = data["stats"], data["comparisons"]
    labels = [r["label"] for r in data["runs"]]
    rows = [["metric", *labels, *[f"{c['b']} - {c['a']}" for c in cmps]]]
    rows.append(["accuracy [95% interval]", *[_accuracy_cell(stats[lab]) for lab in labels],
                 *[_diff_cell(c) for c in cmps]])
    rows.append(["McNemar p (right only in b / only in a)", *["" for _ in labels],
                 *[f"{c['mcnemar_p']:.3g} ({c['b_only']} / {c['a_only']})" if "diff" in c else "n/a" for c in cmps]])
    rows.append(["problems graded", *[str(stats[lab]["n_graded"]) for lab in labels],
                 *[f"{c['n_paired']} in both" for c in cmps]])
    for key, label, kind in METRICS:
        rows.append([label, *[_fmt(stats[lab][key], kind) for lab in labels],
                     *[_fmt_delta(c["deltas"][key], kind) for c in cmps]])
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|---" * len(rows[0]) + "|")
    return "\n".join(lines)


def _significance(c: dict) -> str:
    if "diff" not in c:
        return f"{c['b']} vs {c['a']}: no problem graded in both."
    return (f"{c['b']} minus {c['a']} on the {c['n_paired']} problems graded in both: {100 * c['diff']:+.1f} points "
            f"(95% paired-bootstrap interval [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}], "
            f"bootstrap p = {c['bootstrap_p']:.3g}); {c['b']} alone right on {c['b_only']}, {c['a']} alone on "
            f"{c['a_only']}; McNemar p = {c['mcnemar_p']:.3g} ({c['mcnemar_method']}).")


def _fence(text: str) -> str:
    return "```\n" + text.replace("```", "'''") + "\n```"


def _examples_md(c: dict, right: str, wrong: str, key: str, total: int) -> list[str]:
    shown = c[key]
    out = [f"### {right} right, {wrong} wrong ({len(shown)} shown of {total})", ""]
    if not shown:
        return out + ["None.", ""]
    for i, ex in enumerate(shown, 1):
        a, b = c["a"], c["b"]
        out += [f"**{i}. Q:** {excerpt(str(ex['question']), 600)}", "",
                f"gold `{ex['gold']}`; {a} extracted `{ex['a_extracted']}`, {b} extracted `{ex['b_extracted']}`", "",
                f"{a}:", "", _fence(ex["a_excerpt"]), "", f"{b}:", "", _fence(ex["b_excerpt"]), ""]
    return out


def render_markdown(data: dict, plots: Sequence[str]) -> str:
    """compare.md: the runs, the table, paired significance, plots and disagreement examples."""
    out = ["# mathtune compare", ""]
    if data.get("command"):
        out += [f"Command: `{data['command']}`", ""]
    out += [f"{data['shared_problems']} problems shared by all evaluations, {data['pairing']}.", ""]
    for r in data["runs"]:
        note = "" if r["finished"] else " **unfinished: no summary.json**"
        cmd = f", `{r['command']}`" if r["command"] else ""
        out.append(f"- **{r['label']}**: `{r['folder']}` ({r['n_problems']} problems{cmd}){note}")
    out += ["", comparison_table(data), "", "Differences are the later evaluation minus the first; `pts` are "
            "percentage points. Accuracy intervals are Wilson's.", ""]
    out += [_significance(c) for c in data["comparisons"]]
    if plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    out += ["", "## Disagreements", ""]
    for c in data["comparisons"]:
        out += _examples_md(c, c["b"], c["a"], "b_only_examples", c.get("b_only", 0))
        out += _examples_md(c, c["a"], c["b"], "a_only_examples", c.get("a_only", 0))
    return "\n".join(out).rstrip() + "\n"


# everything write_comparison puts in its folder (`mathtune compare -o DIR` refuses a folder holding any without --force)
OUTPUT_NAMES = ("compare.md", "compare.json", "compare_accuracy.png", "compare_lengths.png", "compare_diagnostics.png")


def write_comparison(comp: Comparison, out_dir: Path) -> dict[str, Path]:
    """Write the plots, compare.json and compare.md into `out_dir` (each atomically); returns their paths."""
    from mathtune.eval.plots import plot_accuracy, plot_diagnostics, plot_lengths
    from mathtune.runs import atomic_write_json, atomic_write_text

    data, stats = comp.data, comp.data["stats"]
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    intervals = {lab: (s["accuracy"], s["accuracy_low"], s["accuracy_high"]) if "accuracy" in s else None
                 for lab, s in stats.items()}
    drawn = {
        "compare_accuracy.png": plot_accuracy(intervals, out_dir / "compare_accuracy.png"),
        "compare_lengths.png": plot_lengths(comp.lengths, out_dir / "compare_lengths.png", comp.max_new_tokens),
        "compare_diagnostics.png": plot_diagnostics(stats, out_dir / "compare_diagnostics.png"),
    }
    plots = [name for name, ok in drawn.items() if ok]
    data["plots"] = plots
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md"}
    atomic_write_json(paths["json"], data)
    atomic_write_text(paths["md"], render_markdown(data, plots))
    return paths
