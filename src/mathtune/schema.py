"""The base of every recipe block, apart from config.py so that each concern can declare its own block beside its code."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base for recipe blocks: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")
