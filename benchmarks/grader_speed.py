"""Time mathtune's grader on its case table, under concurrency and on pathological inputs.

    flock /tmp/mathtune-cpu.lock python benchmarks/grader_speed.py --label branch     # prints JSON, appends to results
    PYTHONPATH=/path/to/other/src python benchmarks/grader_speed.py --label main       # another checkout, same table

Per case: the best of `--repeats` calls of `grade_detailed` (the symbolic worker warmed first, so a worker's import
time is not in any call). Reported: median, p90 and max per-call time over the table, and calls over 5 s. Then
8 threads that each make one check that must time out (1 s), to show each returns at its own deadline, and two
pathological inputs (10k nested braces, a 200x200 matrix) against a 5 s timeout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests/cases/grader_cases.yaml"
PATHOLOGICAL = r"\frac{x^{999999999}}{x^{999999998}+1}"


def table_times(repeats: int) -> list[float]:
    """Best-of-`repeats` seconds per case of the table."""
    from mathtune.answers import grade_detailed

    out = []
    for case in yaml.safe_load(CASES.read_text(encoding="utf-8")):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            grade_detailed(case["completion"], case["gold"], case.get("bench", "auto"))
            best = min(best, time.perf_counter() - start)
        out.append(best)
    return out


def concurrent_timeouts(threads: int, timeout: float) -> list[float]:
    """Wall seconds of each of `threads` concurrent checks that all time out (workers started beforehand)."""
    from mathtune.answers import symbolic
    from mathtune.answers.equiv import check

    symbolic.warm(threads)
    time.sleep(10)  # let each started worker finish importing math-verify
    walls: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        check(PATHOLOGICAL, "3", timeout)
        walls.append(time.perf_counter() - start)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sorted(walls)


def pathological(timeout: float) -> dict[str, float]:
    """Wall seconds of grading two huge inputs with `timeout`, each on a warm worker."""
    from mathtune.answers import grade_detailed, is_equiv

    inputs = {
        "10k nested braces": "{" * 10000 + "1" + "}" * 10000,
        "200x200 matrix": r"\begin{pmatrix}" + r"\\".join(["&".join(["x"] * 200)] * 200) + r"\end{pmatrix}",
    }
    out = {}
    for name, text in inputs.items():
        time.sleep(3)  # the worker replaced after the last timeout has finished importing
        is_equiv(r"2\sqrt{2}", r"\sqrt{8}")
        start = time.perf_counter()
        grade_detailed(rf"\boxed{{{text}}}", "3", timeout=timeout)
        out[name] = time.perf_counter() - start
    return out


def main() -> None:
    """Run the three measurements and print (and append) them as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-concurrency", action="store_true", help="only the table (e.g. for an old checkout)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/grader_speed.jsonl")
    args = parser.parse_args()
    import mathtune
    from mathtune.answers import is_equiv

    is_equiv(r"2\sqrt{2}", r"\sqrt{8}")  # start the worker before any clock runs
    times = table_times(args.repeats)
    ms = sorted(t * 1000 for t in times)
    result = {
        "label": args.label,
        "mathtune": str(Path(mathtune.__file__).parent),
        "cases": len(times),
        "median_ms": round(statistics.median(ms), 4),
        "p90_ms": round(ms[int(0.9 * len(ms))], 3),
        "max_ms": round(ms[-1], 1),
        "calls_over_5s": sum(t > 5 for t in times),
    }
    if not args.skip_concurrency:
        result["8_threads_timeout_1s_walls_s"] = [round(w, 2) for w in concurrent_timeouts(8, 1.0)]
        result["pathological_timeout_5s_walls_s"] = {k: round(v, 2) for k, v in pathological(5.0).items()}
    line = json.dumps(result)
    print(line)
    with args.out.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
