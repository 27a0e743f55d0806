"""Recurrent-depth latent reasoning: mathtune's own prelude/core/coda model, init from Llama, Hub loading, sweeps.

Kept free of imports so that reading a recipe stays fast; importing `mathtune.recurrent.modeling` registers the model
with transformers' Auto classes, so a saved checkpoint loads with `AutoModelForCausalLM.from_pretrained(folder)` and
no remote code (mathtune.models.load_model does that import).
"""
