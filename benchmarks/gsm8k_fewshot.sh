#!/usr/bin/env bash
# Few-shot baselines of the embedded default on the full GSM8K test set (1,319 problems), every sample published.
#   bash benchmarks/gsm8k_fewshot.sh           # cot8 then lm5, each behind the shared CPU lock
#   WAYS=lm5 bash benchmarks/gsm8k_fewshot.sh  # one of them
# cot8: Wei et al. 2022's 8 chain-of-thought exemplars in lm-eval's `gsm8k_cot` format ("Q: ... A: ... The answer is N.")
# lm5: lm-eval's `gsm8k` 5-shot format (the first 5 GSM8K train problems, "Question: ... Answer: ... #### N").
# Greedy, fp32, 256 new tokens, stop strings as `mathtune eval` sets them; outputs in benchmarks/results/gsm8k_fewshot/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/results/gsm8k_fewshot
LOCK="${TMPDIR:-/tmp}/mathtune-cpu.lock"
WAYS=${WAYS:-cot8 lm5}
mkdir -p "$OUT"
for way in $WAYS; do
  case $way in
    cot8) args=(--fewshot 8 --fewshot-set gsm8k-cot) ;;
    lm5) args=(--fewshot 5 --fewshot-set gsm8k-lm-eval) ;;
    *) echo "unknown way: $way (expected cot8 or lm5)" >&2; exit 2 ;;
  esac
  run=runs/gsm8k-fewshot-$way
  start=$(date +%s)
  mkdir -p runs
  echo "before: $(uptime)" > "$run.load"
  resume=(); [ -f "$run/run.json" ] && resume=(--resume)  # continue a killed run; --resume refuses a new folder
  flock "$LOCK" mathtune eval --bench gsm8k "${args[@]}" --max-new-tokens 256 --output "$run" "${resume[@]}"
  echo "after: $(uptime)" >> "$run.load"
  echo "wall: $(( $(date +%s) - start )) s (including any wait for the lock)" >> "$run.load"
  rm -rf "$OUT/$way"
  mathtune regrade "$run" --grader mathtune --output "$OUT/$way" > /dev/null
  cp "$run.load" "$OUT/$way/load.txt"
  echo "published $run -> $OUT/$way"
done
