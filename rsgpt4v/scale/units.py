"""Work units of a JSONL file: contiguous line ranges, found by one pass over the bytes.

A unit is ``{"index", "path", "start", "end", "line"}``: a byte range that begins and ends at line
boundaries, and the number of its first line, so a task reports bad lines by their number in
the whole file. The driver reads no JSON: it only counts newlines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from rsgpt4v.errors import InputError
from rsgpt4v.scale.session import Unit

#: Lines per unit by default: large enough that a task's start-up cost is spread thin, small
#: enough that a lost task redoes little and a few thousand lines give every worker work.
DEFAULT_UNIT_LINES = 2000
_CHUNK = 1 << 20
ModelT = TypeVar("ModelT", bound=BaseModel)


def line_units(path: str | Path, lines_per_unit: int = DEFAULT_UNIT_LINES) -> list[Unit]:
    """Cut the file into units of ``lines_per_unit`` lines (the last one may be shorter)."""
    if lines_per_unit < 1:
        raise InputError(f"lines per unit must be at least 1, got {lines_per_unit}")
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path)
    path = path.resolve()  # workers on other nodes see the same path on shared storage
    units, start, first_line, lines, offset = [], 0, 1, 0, 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            position = chunk.find(b"\n")
            while position >= 0:
                lines += 1
                if lines == lines_per_unit:
                    end = offset + position + 1
                    units.append(_unit(len(units), path, start, end, first_line))
                    start, first_line, lines = end, first_line + lines, 0
                position = chunk.find(b"\n", position + 1)
            offset += len(chunk)
    if offset > start:
        units.append(_unit(len(units), path, start, offset, first_line))
    return units


def _unit(index: int, path: Path, start: int, end: int, line: int) -> Unit:
    return {"index": index, "path": str(path), "start": start, "end": end, "line": line}


def unit_lines(unit: Unit) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line of the unit."""
    with open(unit["path"], "rb") as handle:
        handle.seek(unit["start"])
        data = handle.read(unit["end"] - unit["start"])
    for number, raw in enumerate(data.split(b"\n"), start=unit["line"]):
        if raw.strip():
            yield number, raw.decode("utf-8")


def unit_models(unit: Unit, model: type[ModelT]) -> Iterator[ModelT]:
    """The unit's lines as models; a bad line is an error naming the file and its line."""
    for number, text in unit_lines(unit):
        try:
            yield model.model_validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "line"
            raise InputError(
                f"not a valid {model.__name__.lower()}: {where}: {first['msg']}",
                file=unit["path"],
                line=number,
            ) from None
