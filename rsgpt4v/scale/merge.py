"""Merging JSONL shards into one file sorted by id: the output of a fanned-out run.

Shards written by the ray engine are sorted already, so they are merged streaming (memory: one
line per shard). Shards from elsewhere (``--shard I/N`` runs on several machines) may be in any
order: a shard found out of order is sorted in memory instead. Lines are sorted by their id
field (``id``, or ``tile`` for tile manifests) and then by their text, so equal ids still give
one deterministic order.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from rsgpt4v.errors import InputError
from rsgpt4v.schema import JsonlWriter

ID_FIELDS = ("id", "tile")
_LEADING_ID = re.compile(r'\{"(?:id|tile)": ?("(?:[^"\\]|\\.)*")')


class _OutOfOrder(Exception):
    """A shard turned out not to be sorted; the merge starts again, sorting in memory."""


def line_key(line: str, path: Path | str = "", number: int | None = None) -> tuple[str, str]:
    """(id, text) of a JSONL line: its sort key.

    Lines written by rsgpt4v start with their id (``{"id":"…",``), read without parsing the
    whole line; any other line is parsed.
    """
    if found := _LEADING_ID.match(line):
        return json.loads(found[1]), line
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error.msg})", file=path, line=number) from None
    for name in ID_FIELDS:
        if isinstance(item, dict) and isinstance(item.get(name), str):
            return item[name], line
    raise InputError("line has no id field", file=path, line=number, value=line[:80])


def sort_lines(lines: Iterable[str]) -> list[str]:
    """Lines (newline included) sorted by id, then text."""
    return sorted(lines, key=line_key)


def _keyed(path: Path, check_order: bool) -> Iterator[tuple[tuple[str, str], str]]:
    previous = None
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            line = line if line.endswith("\n") else line + "\n"
            key = line_key(line, path, number)
            if check_order and previous is not None and key < previous:
                raise _OutOfOrder
            previous = key
            yield key, line


def merge_shards(shards: Sequence[str | Path], output: str | Path) -> int:
    """Write every line of the shards to output, sorted by id; return how many were written."""
    paths = [Path(shard) for shard in shards]
    for path in paths:
        if not path.is_file():
            raise InputError("shard not found", file=path)
    try:
        streams = [_keyed(path, check_order=True) for path in paths]
        return _write(output, (line for _, line in heapq.merge(*streams)))
    except _OutOfOrder:
        keyed = [pair for path in paths for pair in _keyed(path, check_order=False)]
        keyed.sort()
        return _write(output, (line for _, line in keyed))


def _write(output: str | Path, lines: Iterable[str]) -> int:
    with JsonlWriter(output) as writer:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) == 4096:
                writer.write_lines(batch)
                batch = []
        writer.write_lines(batch)
    return writer.count
