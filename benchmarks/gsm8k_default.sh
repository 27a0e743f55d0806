#!/usr/bin/env bash
# GSM8K headline: the shipped `gsm8k` recipe on the embedded default, full test set, published with every sample.
#   bash benchmarks/gsm8k_default.sh            # ~75 min on 2 cores; RUN=runs/gsm8k-main to publish a finished run
#   OUT=benchmarks/results/gsm8k_v2 ARGS="--set eval.stop_on_loop=true ..." bash benchmarks/gsm8k_default.sh
# Runs `mathtune run gsm8k` under the shared CPU lock (unless RUN names a finished run folder), regrades both
# evaluations with every grader (mathtune, lm-eval strict-match and flexible-extract, math-verify), compares them
# paired by problem, and copies samples, summaries, report, metrics and plots to benchmarks/results/gsm8k_auto/
# (the recipe as shipped now; benchmarks/results/gsm8k_default/ holds the first published run, fp32, no loop stop).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gsm8k_auto}
RUN=${RUN:-}
LOCK="${TMPDIR:-/tmp}/mathtune-cpu.lock"
if [ -z "$RUN" ]; then
  RUN=runs/gsm8k-$(date +%Y%m%d-%H%M%S)
  mkdir -p runs
  # ARGS: recipe overrides, e.g. "--set lora.r=8"; the start line is written once the lock is held
  # shellcheck disable=SC2086,SC2016
  flock "$LOCK" sh -c 'echo "start $(date -u +%FT%TZ) $(uptime)" > "$0.load"; mathtune run gsm8k "$@" --output "$0" &&
    echo "end $(date -u +%FT%TZ) $(uptime)" >> "$0.load"' "$RUN" ${ARGS:-}
fi
mkdir -p "$OUT"
for stage in baseline tuned; do
  bash benchmarks/regrade_all.sh "$RUN/$stage" "$OUT/$stage"
done
mathtune compare "$OUT/baseline" "$OUT/tuned" --output "$OUT/compare" --examples 5 --force > /dev/null
cp "$RUN"/{report.md,metrics.json,recipe.yaml,run.json} "$OUT/"
cp "$RUN"/*.png "$OUT/" 2>/dev/null || true
[ -f "$RUN/train_log.json" ] && cp "$RUN/train_log.json" "$OUT/"
[ -f "$RUN.load" ] && cp "$RUN.load" "$OUT/load.txt"
echo "published $RUN -> $OUT"
