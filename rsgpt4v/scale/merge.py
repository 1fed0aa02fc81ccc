"""Joining JSONL shards into one file: in input order (shards of the ray engine) or sorted by id.

Shards of consecutive line ranges are concatenated; hash shards of a records file are merged
back into the records' order. Either way a ray run writes the local engine's file.

``merge_shards`` (the ``merge-shards`` command) is for shards made elsewhere (``--shard I/N``
runs on several machines). Given the records file, it merges them back into its order like the
ray engine; without it, it sorts lines by their id field (``id``, or ``tile`` for tile
manifests) and then by their text, so the result does not depend on how the input was cut.
Sorted shards are merged streaming (memory: one line per shard); a shard found out of order is
sorted in memory instead.
"""

from __future__ import annotations

import heapq
import itertools
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


def merge_shards(
    shards: Sequence[str | Path], output: str | Path, records: str | Path | None = None
) -> int:
    """Write every line of the shards to output, in the order of ``records`` (lines naming a
    ``record_id``) or else sorted by id; return how many were written."""
    paths = [Path(shard) for shard in shards]
    for path in paths:
        if not path.is_file():
            raise InputError("shard not found", file=path)
    if records is not None:
        return merge_in_input_order(paths, output, input_positions(records))
    try:
        streams = [_keyed(path, check_order=True) for path in paths]
        return _write(output, (line for _, line in heapq.merge(*streams)))
    except _OutOfOrder:
        keyed = [pair for path in paths for pair in _keyed(path, check_order=False)]
        keyed.sort()
        return _write(output, (line for _, line in keyed))


def concatenate(shards: Sequence[str | Path], output: str | Path) -> int:
    """The shards one after the other: shards of consecutive line ranges give the input's order,
    so the output is the local engine's file, line for line."""

    def lines() -> Iterator[str]:
        for shard in shards:
            with open(shard, encoding="utf-8") as handle:
                yield from handle

    return _write(output, lines())


def input_positions(records: str | Path) -> dict[str, int]:
    """Record id → its place in the records file (ids read without parsing whole lines)."""
    if not Path(records).is_file():
        raise InputError("records file not found", file=records)
    with open(records, encoding="utf-8") as handle:
        ids = (line_key(line, records)[0] for line in handle if line.strip())
        return {record_id: place for place, record_id in enumerate(ids)}


def merge_in_input_order(
    shards: Sequence[str | Path],
    output: str | Path,
    positions: dict[str, int],
    first: str | Path | None = None,
) -> int:
    """Hash shards of one records file, each in input order, merged back into that order.

    Every line names its record (``record_id``); lines are ordered by the record's place in the
    input, and a record's lines (all in one shard) keep their order. This is the order of one
    local run over the whole input. The lines of ``first`` (a file) come before them all.
    """
    end = len(positions)

    def keyed(path: Path) -> Iterator[tuple[int, str]]:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record_id = json.loads(line).get("record_id")
                except (json.JSONDecodeError, AttributeError):
                    raise InputError("not a JSON object line", file=path, line=number) from None
                yield positions.get(record_id, end), line

    streams = [keyed(Path(shard)) for shard in shards]
    merged = (line for _, line in heapq.merge(*streams, key=lambda pair: pair[0]))
    if first is None:
        return _write(output, merged)
    with open(first, encoding="utf-8") as head:
        return _write(output, itertools.chain(head, merged))


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
