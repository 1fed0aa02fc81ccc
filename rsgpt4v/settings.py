"""Stage settings whose fields are also their command-line options.

A stage's settings are one pydantic model; each field that a user sets on the command line is
declared with :func:`option`: its flag, help and validation (types, bounds) live there and
nowhere else. The CLI builds its options from the model (:mod:`rsgpt4v.cli_options`), so adding
an option to a stage is adding one field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StageSettings(BaseModel):
    """Base of stage settings: frozen (a run cannot change them halfway), no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def option(default: Any, *flags: str, help: str, cli_type: Any = None, **constraints: Any) -> Any:
    """A settings field that is a command-line option ``flags`` (e.g. ``"--size"``,
    ``"--leakage/--no-leakage"``) with ``help``; ``constraints`` are pydantic's (``ge``, ``le``,
    ``allow_inf_nan``…). ``cli_type`` is the type the command line reads when it is not the
    field's (a list of ``KEY=VALUE`` texts for a mapping, parsed by the model's validator)."""
    extra = {"flags": list(flags), "cli_type": cli_type}
    return Field(default, description=help, json_schema_extra=extra, **constraints)  # type: ignore[arg-type]


def flags_of(model: type[BaseModel], name: str) -> list[str]:
    """The flags of field ``name`` (empty when the field is not an option)."""
    extra = model.model_fields[name].json_schema_extra
    return list(extra.get("flags", ())) if isinstance(extra, dict) else []  # type: ignore[arg-type]


def key_values(value: object) -> object:
    """``["labels=hbb"]`` (a repeatable command-line option) → ``{"labels": "hbb"}``; a mapping
    is left as it is. Use as a ``field_validator(..., mode="before")``."""
    if not isinstance(value, list | tuple):
        return value
    pairs = {}
    for pair in value:
        key, sep, text = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        pairs[key.strip()] = text.strip()
    return pairs
