"""Exports of a trained adapter: merged into its base (`merge.py`) and GGUF for llama.cpp / Ollama (`gguf.py`).

    mathtune export RUN_OR_ADAPTER --merged DIR [--gguf FILE]
"""
