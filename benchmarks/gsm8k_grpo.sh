#!/usr/bin/env bash
# GSM8K GRPO from the calculator-note SFT adapter of gsm8k_calculator.sh (the `gsm8k_grpo` recipe: pass-rate band on
# the pool, dynamic sampling, 10 steps), then all 1,319 test problems graded tool-free under the protocol of the SFT
# runs (gsm8k_eval_flags.sh), paired against the starting adapter's committed run and the untuned model's.
#   SFT=runs/gsm8k-calc bash benchmarks/gsm8k_grpo.sh           # GRPO + full evaluation, 2 cores
#   RUN=runs/gsm8k-grpo-band bash benchmarks/gsm8k_grpo.sh      # publish a finished run (RUN and RUN-eval)
# Everything heavy runs under the shared CPU lock; load averages go to $OUT/load.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gsm8k_eval_flags.sh
RES=benchmarks/results/gsm8k_calculator
OUT=${OUT:-benchmarks/results/gsm8k_grpo}
LOCK="${TMPDIR:-/tmp}/mathtune-cpu.lock"
RUN=${RUN:-}
mkdir -p "$OUT"
log() { { echo "$1 $(date -u +%FT%TZ)"; uptime; } >> "$OUT/load.txt"; }
if [ -z "$RUN" ]; then
  RUN=runs/gsm8k-grpo-$(date +%Y%m%d-%H%M%S)
  log "grpo start"
  flock "$LOCK" mathtune grpo gsm8k_grpo --set "grpo.adapter=${SFT:?set SFT=RUN of the SFT adapter}/adapter" \
    --output "$RUN"
  log "grpo end"
  log "eval start"
  flock "$LOCK" mathtune eval "${GSM8K_EVAL[@]}" --adapter "$RUN/adapter" --output "$RUN-eval"
  log "eval end"
fi
if [ -d "$RUN-eval" ]; then  # the full-test evaluation (absent when only the GRPO run was published)
  bash benchmarks/regrade_all.sh "$RUN-eval" "$OUT/tuned-grpo"
  mathtune compare "$RES/tuned-nocalc" "$OUT/tuned-grpo" --output "$OUT/compare_grpo_vs_sft" --examples 3 --force \
    > /dev/null
  mathtune compare "$RES/baseline" "$OUT/tuned-grpo" --output "$OUT/compare_grpo_vs_baseline" --examples 3 \
    --force > /dev/null
fi
cp "$RUN"/{recipe.yaml,run.json,metrics.json,report.md,grpo.png,train_log.json} "$OUT/" 2>/dev/null || true
cp -r "$RUN/pass_rates" "$RUN/evals" "$OUT/" 2>/dev/null || true
echo "published -> $OUT"
