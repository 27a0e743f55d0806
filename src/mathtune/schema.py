"""The base of every recipe block and the one-line description of a validation error, shared by recipes and sources."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """Base for recipe blocks: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# pydantic error type -> what we tell the user was expected
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
}


def expected_text(error: dict) -> str:
    """What a pydantic error says was expected, in the words used in every one-line message."""
    if error["type"] in _EXPECTED:
        return _EXPECTED[error["type"]]
    msg = error["msg"].removeprefix("Input should be ")
    return msg[0].lower() + msg[1:]


def _block_at(loc: tuple, model: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model that holds the last key of `loc` (None when the path leaves pydantic models)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def describe_error(error: ValidationError, where: str, model: type[BaseModel]) -> str:
    """The first error of a pydantic validation as one line: `where.key: expected ..., got ...`."""
    errors = error.errors()
    # an unknown key usually explains a "missing" one too (a typo): report it first
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = where
    for part in err["loc"]:
        if part != "__root__":
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    kind, given, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if isinstance(given, bool) and (kind == "invalid_key" or err["loc"][-1:] == ("[key]",)):
        # YAML 1.1 (PyYAML) reads an unquoted on/off/yes/no/true/false key as a boolean: name the cause
        parent = [p for p in err["loc"][:-1 if kind == "invalid_key" else -2] if p != "__root__"]
        block = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parent)
        return (f"{block or 'recipe'}: a key was read as the boolean {given}: YAML reads an unquoted "
                "on/off/yes/no/true/false key as a boolean; quote it (\"on\": ...)")
    if kind == "missing":
        return f"{key}: missing required key"
    if kind == "extra_forbidden":
        block = _block_at(err["loc"], model)
        known = sorted(block.model_fields) if block else []
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = f". Did you mean {close[0]!r}?" if close else ""
        return f"{key}: unknown key{hint}" + (f" (expected one of: {', '.join(known)})" if known else "")
    if kind in _EXPECTED:
        return f"{key}: expected {_EXPECTED[kind]}, got {given!r}"
    if kind == "literal_error":
        return f"{key}: expected {ctx['expected']}, got {given!r}"
    if kind == "value_error":  # our own validators: their message already says what was expected
        msg = str(ctx.get("error", err["msg"].removeprefix("Value error, ")))
        # a nested validator (a data source's) already names the full key; do not prefix it twice
        return msg if msg.startswith(key) else f"{key}: {msg}"
    msg = err["msg"]
    return f"{key}: {msg[0].lower()}{msg[1:]}, got {given!r}"
