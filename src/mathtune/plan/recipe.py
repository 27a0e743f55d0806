"""The recipe's `plan:` block: what a dry run needs that the recipe does not otherwise say."""

from __future__ import annotations

from typing import Any

from mathtune.schema import Strict


class PlanConfig(Strict):
    """Shapes for a model the dry run cannot read offline: transformers config keys, e.g.
    `{model_type: qwen2, hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12,
    num_key_value_heads: 2, vocab_size: 151936, tie_word_embeddings: false}`."""

    architecture: dict[str, Any] | None = None
