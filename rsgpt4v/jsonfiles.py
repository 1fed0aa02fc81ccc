"""JSON documents read whole (annotation files, captions, imported datasets), errors located.

``json`` raises ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``RecursionError`` for
deep nesting, neither naming the file; the CLI would print a traceback. Every reader of a whole
JSON file goes through here instead and gets an :class:`InputError` naming the file and line.
JSON Lines files are read with :func:`rsgpt4v.schema.jsonl_lines`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsgpt4v.errors import InputError

# A JSON string (escapes included) or a bracket: enough to measure nesting without parsing.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def load_json(
    path: str | Path,
    *,
    what: str = "JSON file",
    object_hook: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """The parsed JSON document at ``path`` (a UTF-8 BOM is allowed); InputError if it is not.

    ``what`` names the file in the messages ("captions file not found").
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=path) from None
    except OSError as error:
        raise InputError(f"cannot read the {what} ({error.strerror})", file=path) from None
    text = decode_utf8(data, path)
    del data  # a large COCO file is held once, as text
    return loads(text, file=path, object_hook=object_hook)


def decode_utf8(data: bytes, path: str | Path) -> str:
    """``data`` as text (a leading BOM dropped); InputError with the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise InputError(
            f"not UTF-8 text ({error.reason} at column {column}); save the file as UTF-8",
            file=path,
            line=line,
            value=data[error.start : error.end],
        ) from None


def loads(
    text: str,
    *,
    file: str | Path,
    line: int | None = None,
    object_hook: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """``json.loads`` with its errors as InputError at ``file`` (and ``line``, for JSON Lines).

    ``line`` is the line ``text`` was read from; without it, lines are counted within ``text``.
    """
    try:
        return json.loads(text, object_hook=object_hook)
    except json.JSONDecodeError as error:
        raise InputError(
            f"not valid JSON ({error.msg} at column {error.colno})",
            file=file,
            line=line if line is not None else error.lineno,
        ) from None
    except RecursionError:
        depth, deepest_line = _deepest(text)
        raise InputError(
            f"JSON nested too deeply ({depth} levels) to read",
            file=file,
            line=line if line is not None else deepest_line,
        ) from None


def _deepest(text: str) -> tuple[int, int]:
    """(deepest nesting, line where it is first reached), for the message of a RecursionError."""
    depth = deepest = where = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, match.start()
        elif token in "]}":
            depth -= 1
    return deepest, text.count("\n", 0, where) + 1
