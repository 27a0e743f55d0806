"""Training plans without training: resolve a recipe's model, data and schedule, and estimate its memory.

`mathtune train RECIPE --dry-run [--gpu-mem 24GB]` prints what `build_plan` returns.
"""
