"""Compiled phrasing templates fill exactly as ``str.format_map`` does."""

from __future__ import annotations

import string
from importlib.resources import files

import pytest
import yaml

from rsgpt4v.instruct.templates import compile_template, fill_template


def _pool_strings() -> list[str]:
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for resource in (files("rsgpt4v.prompts") / "rules").iterdir():
        if resource.name.endswith(".yaml"):
            walk(yaml.safe_load(resource.read_text(encoding="utf-8")))
    return found


def _fields(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def test_every_pool_template_compiles_and_fills_as_format_map() -> None:
    templates = _pool_strings()
    assert len(templates) > 100
    for template in templates:
        filler = compile_template(template)
        assert getattr(filler, "__self__", None) is not template, template  # compiled
        for value in ("x'{é\\\"}\n", 12345.678, 7, None):
            values = dict.fromkeys(_fields(template), value)
            assert filler(values) == template.format_map(values)


@pytest.mark.parametrize(
    "template",
    [
        "",
        "plain text",
        "a {x} b {x}",
        "{x!r:>10} {x!s} {x!a}",
        "{{braces}} {x}",
        "back\\slash 'single' \"double\" \n newline \t tab {x}",
        "non-ASCII ü 港 🚢 \x01 {x}",
        "{x:,.1f} {y:03d}",
        "{0}",
        "{x.real}",
        "{x[0]}",
        "{x:{y}}",
        "{x!z}",
        "{",
        "}",
    ],
)
def test_any_template_fills_or_fails_as_format_map(template: str) -> None:
    values = {"x": 1234.5, "y": 5, "0": "zero"}
    try:
        expected: object = template.format_map(values)
    except (ValueError, KeyError, IndexError, TypeError) as error:
        expected = type(error)
    try:
        got: object = fill_template(template, values)
    except (ValueError, KeyError, IndexError, TypeError) as error:
        got = type(error)
    assert got == expected


def test_a_missing_value_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="count"):
        fill_template("{count} ships", {"plural": "ships"})
