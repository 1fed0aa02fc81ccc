"""Every wording a rule answer may take, so tests check an answer's facts, not one phrasing.

An answer key of ``prompts/rules/<task>.yaml`` holds one phrasing or a list of variants, drawn
with the rule's rng. ``renderings`` fills every variant with the facts a test expects;
``matches`` does the same for an answer of which a test knows only some values (the others may
be anything on one line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.templates import fill_template

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
ANY = r"[^\n]*?"  # a placeholder's value: any text on one line


def variants(task: str, key: str) -> list[str]:
    """The phrasings of one answer key, as a list."""
    value = load_pool(task).answers[key]
    return [value] if isinstance(value, str) else list(value)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def renderings(task: str, key: str, **values: object) -> set[str]:
    """Every variant of ``key`` filled with ``values``, as written and capitalised."""
    filled = {fill_template(v, values) for v in variants(task, key)}
    return filled | {_capitalised(text) for text in filled}


def pattern(template: str, values: dict[str, object]) -> str:
    """A regex of one phrasing: given values literally, any other placeholder as any text."""
    parts = []
    for index, part in enumerate(_PLACEHOLDER.split(template)):
        if index % 2 == 0:
            parts.append(re.escape(part))
        elif part in values:
            parts.append(re.escape(str(values[part])))
        else:
            parts.append(ANY)
    return "".join(parts)


def matches(task: str, key: str, text: str, **values: object) -> bool:
    """Whether ``text`` is one variant of ``key`` with these values (first letter any case)."""
    for template in variants(task, key):
        regex = pattern(template, values)
        if re.fullmatch(regex, text) or re.fullmatch(regex, text[:1].lower() + text[1:]):
            return True
    return False


def contains(task: str, key: str, text: str, **values: object) -> bool:
    """Whether one variant of ``key`` with these values is a part of ``text`` (a sentence of a
    longer answer)."""
    for template in variants(task, key):
        regex = pattern(template, values)
        if re.search(regex, text) or _search_any_case(regex, text):
            return True
    return False


def _search_any_case(regex: str, text: str) -> bool:
    """A search that lets the first letter of the phrasing be either case."""
    if not regex or not regex[0].isalpha():
        return False
    first = regex[0]
    return re.search(f"[{first.lower()}{first.upper()}]" + regex[1:], text) is not None


def read(
    task: str, keys: Iterable[str], text: str, **patterns: str
) -> tuple[str, dict[str, str]] | None:
    """(key, placeholder values) of the first variant of ``keys`` that ``text`` is, else None.

    ``patterns`` give the regex a placeholder's value must match (default: any text on one line);
    a placeholder used twice must read the same both times.
    """
    lowered = text[:1].lower() + text[1:]
    for key in keys:
        for template in variants(task, key):
            regex = _named_pattern(template[:1].lower() + template[1:], patterns)
            match = re.fullmatch(regex, lowered)
            if match:
                return key, match.groupdict()
    return None


def _named_pattern(template: str, patterns: dict[str, str]) -> str:
    parts, seen = [], set()
    for index, part in enumerate(_PLACEHOLDER.split(template)):
        if index % 2 == 0:
            parts.append(re.escape(part))
        elif part in seen:
            parts.append(f"(?P={part})")
        else:
            seen.add(part)
            parts.append(f"(?P<{part}>{patterns.get(part, ANY)})")
    return "".join(parts)


def sentences(text: str) -> list[str]:
    """An answer's sentences (a full stop, a space, then a capital letter or a box)."""
    return re.split(r"(?<=\.) (?=[A-Z<])", text)
