#!/usr/bin/env bash
# GSM8K with the calculator of its paper (Cobbe et al. 2021): the `gsm8k` recipe trained on solutions that keep their
# <<a*b=c>> notes, then all 1,319 test problems graded three ways under one prompt and decoding (bf16, loop stop):
# the tuned adapter with `eval.calculator` (tool-assisted protocol), the same adapter without it, the untuned model.
#   bash benchmarks/gsm8k_calculator.sh                 # ~50 min training + 3 evaluations of 18-23 min, 2 cores
#   TRAINED=runs/gsm8k-calc bash benchmarks/gsm8k_calculator.sh   # reuse a trained adapter
#   EVALS=runs/calc bash benchmarks/gsm8k_calculator.sh  # publish finished evaluations (EVALS-tuned-calc, ...)
# Everything heavy runs under the shared CPU lock; load averages go to $OUT/load.txt. Measured results and what they
# mean: benchmarks/results/gsm8k_calculator/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gsm8k_calculator}
LOCK="${TMPDIR:-/tmp}/mathtune-cpu.lock"
TRAINED=${TRAINED:-}
EVALS=${EVALS:-}
source benchmarks/gsm8k_eval_flags.sh
mkdir -p "$OUT"
log() { { echo "$1 $(date -u +%FT%TZ)"; uptime; } >> "$OUT/load.txt"; }
if [ -z "$EVALS" ]; then
  if [ -z "$TRAINED" ]; then
    TRAINED=runs/gsm8k-calc-$(date +%Y%m%d-%H%M%S)
    log "train start"
    flock "$LOCK" mathtune train gsm8k --set data.train.calculator_notes=true --set speed.precision=auto \
      --output "$TRAINED"
    log "train end"
  fi
  EVALS=$TRAINED-eval
  for way in tuned-calc tuned-nocalc baseline; do
    case $way in
      tuned-calc) extra=(--adapter "$TRAINED/adapter" --set eval.calculator=true) ;;
      tuned-nocalc) extra=(--adapter "$TRAINED/adapter") ;;
      baseline) extra=() ;;
    esac
    log "$way start"
    flock "$LOCK" mathtune eval "${GSM8K_EVAL[@]}" "${extra[@]}" --output "$EVALS-$way"
    log "$way end"
  done
fi
for way in tuned-calc tuned-nocalc baseline; do
  bash benchmarks/regrade_all.sh "$EVALS-$way" "$OUT/$way"
done
mathtune compare "$OUT/baseline" "$OUT/tuned-calc" --output "$OUT/compare_calc_vs_baseline" --examples 3 --force > /dev/null
mathtune compare "$OUT/tuned-nocalc" "$OUT/tuned-calc" --output "$OUT/compare_calc_vs_nocalc" --examples 3 --force > /dev/null
mathtune compare "$OUT/baseline" "$OUT/tuned-nocalc" --output "$OUT/compare_nocalc_vs_baseline" --examples 3 --force \
  > /dev/null
if [ -n "$TRAINED" ] && [ -d "$TRAINED" ]; then
  cp "$TRAINED"/{recipe.yaml,run.json,train_log.json,curation.json} "$OUT/" 2>/dev/null || true
fi
echo "published -> $OUT"
