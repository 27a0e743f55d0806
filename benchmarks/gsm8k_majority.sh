#!/usr/bin/env bash
# Majority vote at evaluation time (self-consistency, Wang et al. 2022) on all 1,319 GSM8K test problems: the
# calculator-note adapter of gsm8k_calculator.sh, 4 samples per problem at temperature 0.7 with eval.calculator, then
# maj@1/2/4 with intervals and McNemar against the greedy runs committed in benchmarks/results/gsm8k_calculator/.
#   TRAINED=runs/gsm8k-calc bash benchmarks/gsm8k_majority.sh     # measured: 87.2 min on 2 cores
#   EVAL=runs/gsm8k-calc-eval-maj4 bash benchmarks/gsm8k_majority.sh   # publish a finished evaluation
# The evaluation runs under the shared CPU lock; load averages go to $OUT/load.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gsm8k_eval_flags.sh
RES=benchmarks/results/gsm8k_calculator
OUT=${OUT:-$RES/tuned-calc-maj4}
LOCK="${TMPDIR:-/tmp}/mathtune-cpu.lock"
EVAL=${EVAL:-}
if [ -z "$EVAL" ]; then
  EVAL=${TRAINED:?set TRAINED=RUN (with RUN/adapter) or EVAL=finished evaluation folder}-eval-maj4
  { echo "maj4 start $(date -u +%FT%TZ)"; uptime; } >> "$EVAL.load"
  flock "$LOCK" mathtune eval "${GSM8K_EVAL[@]}" --adapter "$TRAINED/adapter" --set eval.calculator=true \
    --samples 4 --temperature 0.7 --seed 0 --output "$EVAL"
  { echo "maj4 end $(date -u +%FT%TZ)"; uptime; } >> "$EVAL.load"
fi
bash benchmarks/regrade_all.sh "$EVAL" "$OUT"
[ -f "$EVAL.load" ] && cp "$EVAL.load" "$OUT/load.txt"
python benchmarks/majority_vote.py --sampled "$OUT" --against "baseline=$RES/baseline" \
  --against "tuned-calc-greedy=$RES/tuned-calc" --against "tuned-nocalc-greedy=$RES/tuned-nocalc" \
  --output "$OUT/majority_vote.json" | tee "$OUT/majority_vote.txt"
echo "published -> $OUT"
