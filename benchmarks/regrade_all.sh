#!/usr/bin/env bash
# Publish one evaluation folder: regraded with mathtune's grader into DEST, plus the agreement of each field grader
# (lm-eval strict-match, flexible-extract, math-verify) with mathtune's as DEST/agreement-GRADER.md.
#   bash benchmarks/regrade_all.sh RUN_EVAL_DIR DEST
# Shared by gsm8k_default.sh and gsm8k_calculator.sh. Light: reads samples.jsonl, generates nothing.
set -euo pipefail
SRC=$1
DEST=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "${DEST:?}"
mathtune regrade "$SRC" --grader mathtune --output "$DEST" > /dev/null
for grader in strict flexible math-verify; do
  mathtune regrade "$SRC" --grader "$grader" --against mathtune --output "$TMP/$grader" --examples 2 > /dev/null
  cp "$TMP/$grader/regrade.md" "$DEST/agreement-$grader.md"
done
