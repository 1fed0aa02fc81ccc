"""Work units of a JSONL file: contiguous line ranges, found by one pass over the bytes.

A unit is ``{"index", "path", "start", "end", "line"}``: a byte range that begins and ends at line
boundaries (``end`` None: to the end of the file), and the number of its first line, so a task
reports bad lines by their number in the whole file. The driver reads no JSON: it only counts
newlines. :func:`file_units` is what a stage asks for: the whole file as one unit on the local
engine, line ranges of absolute paths on a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from rsgpt4v.engines.stage import FanOut, Unit
from rsgpt4v.errors import InputError
from rsgpt4v.schema import line_error, not_utf8

#: Lines per unit by default: large enough that a task's start-up cost is spread thin, small
#: enough that a lost task redoes little and a few thousand lines give every worker work.
DEFAULT_UNIT_LINES = 2000
_CHUNK = 1 << 20
ModelT = TypeVar("ModelT", bound=BaseModel)


def file_units(
    path: str | Path, fan_out: FanOut | None, lines_per_unit: int | None = DEFAULT_UNIT_LINES
) -> list[Unit]:
    """The file cut into line ranges on a cluster (absolute paths, for workers on other nodes);
    one unit on the local engine (the path as given) or when ``lines_per_unit`` is None."""
    if fan_out is not None and lines_per_unit is not None:
        return line_units(path, lines_per_unit)
    if not Path(path).is_file():
        raise InputError("file not found", file=path)
    return [_unit(0, Path(path).resolve() if fan_out else Path(path), 0, None, 1)]


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


def _unit(index: int, path: Path, start: int, end: int | None, line: int) -> Unit:
    return {"index": index, "path": str(path), "start": start, "end": end, "line": line}


def unit_lines(unit: Unit) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line of the unit, read a line at a time; a line
    that is not UTF-8 is an error naming it."""
    path, end = unit["path"], unit["end"]
    with open(path, "rb") as handle:
        handle.seek(unit["start"])
        position = unit["start"]
        for number, raw in enumerate(handle, start=unit["line"]):
            if end is not None and position >= end:
                return
            position += len(raw)
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise not_utf8(error, Path(path), number) from None
            yield number, text


def unit_models(unit: Unit, model: type[ModelT]) -> Iterator[tuple[int, ModelT]]:
    """(line number, model) of the unit's lines; a bad line is an error naming file and line."""
    for number, text in unit_lines(unit):
        try:
            yield number, model.model_validate_json(text)
        except ValidationError as error:
            raise line_error(error, model, Path(unit["path"]), number, text) from None
