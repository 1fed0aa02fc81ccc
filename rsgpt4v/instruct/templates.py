"""Phrasing templates compiled once: :func:`fill_template` is ``template.format_map(values)``.

``str.format_map`` parses its template on every call, about a microsecond for a phrasing with
three fields, and the rules fill some ninety templates per record from a few hundred distinct
pool strings. Each template is compiled on first use into the f-string it spells (each field is
``format(value, spec)`` after its conversion, exactly as ``format_map`` does), so filling it
costs a dictionary lookup and a call. A template whose fields are not plain names (``{0}``,
``{a.b}``, ``{a[0]}``, nested specs) keeps ``format_map``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping

MAX_COMPILED = 4096  # templates kept; more (never so in the pools) are filled by format_map

Filler = Callable[[Mapping[str, object]], str]
_compiled: dict[str, Filler] = {}
_FORMATTER = string.Formatter()
_UNSAFE_IN_SPEC = frozenset("'\"\\{}\n\r")


def fill_template(template: str, values: Mapping[str, object]) -> str:
    """``template.format_map(values)``, with the template parsed once per process."""
    filler = _compiled.get(template)
    if filler is None:
        filler = compile_template(template)
        if len(_compiled) < MAX_COMPILED:
            _compiled[template] = filler
    return filler(values)


def compile_template(template: str) -> Filler:
    """A function of the values that returns ``template.format_map(values)``."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError:  # malformed: format_map raises its own error when called
        return template.format_map
    body = []
    for literal, field, spec, conversion in parsed:
        body.append(_escaped(literal))
        if field is None:
            continue
        if (
            not field.isidentifier()
            or conversion not in (None, "r", "s", "a")
            or (spec and _UNSAFE_IN_SPEC.intersection(spec))
        ):
            return template.format_map
        body.append(
            f'{{v["{field}"]'
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
    source = "lambda v: f'" + "".join(body) + "'"
    try:
        return eval(source, {"__builtins__": {}})  # the source is built above from parts
    except SyntaxError:  # not expected; format_map stays right
        return template.format_map


def _escaped(literal: str) -> str:
    """Literal text as it is written inside a single-quoted f-string."""
    text = literal.encode("unicode_escape").decode("ascii").replace("'", "\\'")
    return text.replace("{", "{{").replace("}", "}}")
