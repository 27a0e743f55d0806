"""How often a run's closed calculator notes <<EXPR=V>> hold a wrong value V, read from its samples.jsonl.

    python benchmarks/calculator_notes.py RUN_DIR [RUN_DIR ...]

Reads only the committed per-sample outputs, so anyone can recount; EXPR is evaluated by eval/calculator.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mathtune.eval.calculator import evaluate

CLOSED_RE = re.compile(r"<<([0-9.+\-*/() ]+)=([-0-9.,]+)>>")


def count(run: Path) -> dict:
    """Closed notes, those whose value is off the expression's by more than 1e-3, and rows with one such."""
    notes = wrong = rows_wrong = 0
    for line in (run / "samples.jsonl").read_text().splitlines():
        bad = 0
        for expr, shown in CLOSED_RE.findall(json.loads(line)["completion"]):
            value = evaluate(expr)
            if value is None:
                continue
            notes += 1
            try:
                bad += abs(float(shown.replace(",", "")) - value) > 1e-3
            except ValueError:
                bad += 1
        wrong += bad
        rows_wrong += bad > 0
    return {"run": str(run), "notes": notes, "wrong": wrong, "rows_with_a_wrong_note": rows_wrong}


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        r = count(Path(arg))
        print(f"{r['run']}: {r['wrong']} of {r['notes']} closed notes wrong ({r['wrong'] / max(r['notes'], 1):.1%}); "
              f"{r['rows_with_a_wrong_note']} rows with at least one")
