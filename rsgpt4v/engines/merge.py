"""Joining JSONL shards into one file: in input order (shards of the ray engine) or sorted by id.

Shards of consecutive line ranges are concatenated; hash shards of a records file are merged
back into the records' order. Either way a ray run writes the local engine's file.

``merge_shards`` (the ``merge-shards`` command) is for shards made elsewhere (``--shard I/N``
runs on several machines). Given the records file, it merges them back into its order like the
ray engine; without it, it sorts lines by their id field (``id``, or ``tile`` for tile
manifests) and then by their text, so the result does not depend on how the input was cut.
Sorted shards are merged streaming (memory: one line per shard); a shard found out of order is
sorted in memory instead. Nothing is written unless the parts are the whole run, each part once:
their manifests (:mod:`rsgpt4v.engines.manifests`) prove it; parts without manifests are checked
by ids (an id, or a record's lines, in two parts is a repeat; with the records file, a hash
shard holding records and no part is missing).
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from rsgpt4v.engines.manifests import ShardSet, check_manifests
from rsgpt4v.engines.shards import shard_of
from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import loads
from rsgpt4v.schema import JsonlWriter, jsonl_lines

ID_FIELDS = ("id", "tile")
#: Record ids kept per part to infer the shard count of parts without manifests: enough that a
#: count fitting them all by chance is out of the question for parts of a few dozen records.
SAMPLED = 64
_LEADING_ID = re.compile(r'\{"(?:id|tile)": ?("(?:[^"\\]|\\.)*")')


class _OutOfOrder(Exception):
    """A shard turned out not to be sorted; the merge starts again, sorting in memory."""


def line_key(line: str, path: Path | str = "", number: int | None = None) -> tuple[str, str]:
    """(id, text) of a JSONL line: its sort key.

    Lines written by rsgpt4v start with their id (``{"id":"…",``), read without parsing the
    whole line; any other line is parsed.
    """
    if found := _LEADING_ID.match(line):
        return loads(found[1], file=path, line=number), line
    item = loads(line, file=path, line=number)
    for name in ID_FIELDS:
        if isinstance(item, dict) and isinstance(item.get(name), str):
            return item[name], line
    raise InputError("line has no id field", file=path, line=number, value=line[:80])


def _keyed(path: Path, part: int, check_order: bool) -> Iterator[tuple[tuple[str, str], int, str]]:
    previous = None
    for number, line in jsonl_lines(path):
        line = _ended(line)
        key = line_key(line, path, number)
        if check_order and previous is not None and key < previous:
            raise _OutOfOrder
        previous = key
        yield key, part, line


def _ended(line: str) -> str:
    """A line read as bytes, ended by one newline as a text-mode reader ends it (CRLF too)."""
    return line.removesuffix("\n").removesuffix("\r") + "\n"


def merge_shards(
    shards: Sequence[str | Path], output: str | Path, records: str | Path | None = None
) -> int:
    """Write every line of the shards to output, in the order of ``records`` (lines naming a
    ``record_id``) or else sorted by id; return how many were written.

    Nothing is written unless the parts are the shards of one run, each once: proven by their
    manifests (:mod:`rsgpt4v.engines.manifests`) where they have them, else by ids (a record's
    lines, or an id, in two parts; with ``records``, the parts' hash shards).
    """
    paths = [Path(shard) for shard in shards]
    given: dict[Path, Path] = {}
    for path in paths:
        if not path.is_file():
            raise InputError("shard not found", file=path)
        if (same := given.setdefault(path.resolve(), path)) is not path:
            raise InputError(f"is given twice (also as {same})", file=path)
    known = check_manifests(paths, records)
    if records is not None:
        return _write(output, _ShardCheck(paths, records, known).merged())
    try:
        streams = [_keyed(path, part, check_order=True) for part, path in enumerate(paths)]
        return _write(output, _unrepeated(heapq.merge(*streams), paths))
    except _OutOfOrder:
        keyed = [item for part, path in enumerate(paths) for item in _keyed(path, part, False)]
        keyed.sort()
        return _write(output, _unrepeated(keyed, paths))


def _unrepeated(
    items: Iterable[tuple[tuple[str, str], int, str]], paths: Sequence[Path]
) -> Iterator[str]:
    """The lines of id-sorted items; an id found in two parts stops the merge: shards of one
    input hold each item once, so it is a part given twice (or parts that overlap)."""
    last_id, last_part = None, -1
    for (item_id, _), part, line in items:
        if item_id == last_id and part != last_part:
            raise InputError(
                f"id {item_id!r} is also in {paths[last_part]}: a shard given twice, or parts "
                "that overlap",
                file=paths[part],
            )
        last_id, last_part = item_id, part
        yield line


class _ShardCheck:
    """A ``--records`` merge that proves, as it reads, that its parts are the N hash shards of
    one ``--shard I/N`` run (:func:`rsgpt4v.engines.shards.shard_of`), each once.

    Every line must name a record of the records file, and each record's lines must be in one
    part (else a shard was given twice). With manifests, N and each part's shard are known and
    every record must hash to its part's shard. Without, N is inferred: each part's records
    hash to one shard of N, a shard per part; N is the number of parts when that holds (unless
    a larger N fits beyond chance: parts of a run some of whose shards were left out), else the
    smallest larger N that fits. A shard of that N holding records of the records file and no
    part is reported missing. All checks end before the output is renamed into place.
    """

    def __init__(self, paths: Sequence[Path], records: str | Path, known: ShardSet | None):
        self.paths, self.records = paths, records
        self.positions = input_positions(records)
        self.count = known.count if known else len(paths)
        self.expected = known.indices if known else None
        self.owner: dict[str, int] = {}
        self.samples: list[list[str]] = [[] for _ in paths]  # first record ids of each part

    def merged(self) -> Iterator[str]:
        streams = [self._keyed(part) for part in range(len(self.paths))]
        for _, line in heapq.merge(*streams, key=lambda pair: pair[0]):
            yield line
        if self.expected is None:
            self._check_by_hash()

    def _keyed(self, part: int) -> Iterator[tuple[int, str]]:
        path, seen = self.paths[part], set()
        for number, line in jsonl_lines(path):
            item = loads(line, file=path, line=number)
            if not isinstance(item, dict):
                raise InputError("not a JSON object line", file=path, line=number)
            record_id = item.get("record_id")
            place = self.positions.get(record_id) if isinstance(record_id, str) else None
            if place is None:
                raise InputError(
                    f"record_id is not a record of {self.records}",
                    file=path,
                    line=number,
                    value=record_id,
                )
            owner = self.owner.setdefault(record_id, part)
            if owner != part:
                raise InputError(
                    f"record {record_id!r} also has lines in {self.paths[owner]}: the same "
                    "shard given twice?",
                    file=path,
                    line=number,
                )
            if place not in seen:  # the part's first line of this record
                seen.add(place)
                self._place(part, record_id, number)
            yield place, _ended(line)

    def _place(self, part: int, record_id: str, number: int) -> None:
        """Note (or, with a manifest, check) the shard of a record of this part."""
        index = shard_of(record_id, self.count)
        if self.expected is not None:
            if index != self.expected[part]:
                raise InputError(
                    f"holds record {record_id!r} of shard {index} of {self.count}, but its "
                    f"manifest says shard {self.expected[part]}",
                    file=self.paths[part],
                    line=number,
                )
            return
        if len(self.samples[part]) < SAMPLED:
            self.samples[part].append(record_id)

    def _fits(self, count: int) -> bool:
        """Whether every part's records hash to one shard of ``count``, a shard per part."""
        claimed: set[int] = set()
        for sample in self.samples:
            indices = {shard_of(record_id, count) for record_id in sample}
            if len(indices) > 1 or indices & claimed:
                return False
            claimed |= indices
        return True

    def _check_by_hash(self) -> None:
        """Parts without manifests: infer N (see the class) and refuse a missing shard."""
        parts = len(self.paths)
        larger = range(parts + 1, 4 * parts + 65)
        fitting = next((count for count in larger if self._fits(count)), None)
        evidence = sum(max(len(sample) - 1, 0) for sample in self.samples)
        chance_bits = 24 + math.log2(len(larger))  # a complete set fits by chance below 2^-24
        beyond_chance = fitting is not None and evidence * math.log2(fitting) >= chance_bits
        count = parts if self._fits(parts) and not beyond_chance else fitting
        if count is None:
            raise InputError(
                f"the {parts} parts are not the shards of one --shard I/N run: their records do "
                "not split by the hash of the record id (a part missing or from another run?)"
            )
        claimed = {shard_of(sample[0], count) for sample in self.samples if sample}
        empty = sum(not sample for sample in self.samples)
        if len(claimed) + empty >= count:
            return  # every shard has its part
        held: dict[int, list[str]] = {}
        for record_id in self.positions:
            index = shard_of(record_id, count)
            if index not in claimed:
                held.setdefault(index, []).append(record_id)
        if len(held) > empty:
            missing = sorted(held)
            example = held[missing[0]][0]
            raise InputError(
                f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of "
                f"{count} (inferred from the parts) "
                f"{'are' if len(missing) > 1 else 'is'} missing: no part holds the records of "
                f"{self.records} that hash there ({sum(map(len, held.values()))} records, e.g. "
                f"{example!r})"
            )


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
    ids = (line_key(line, records, number)[0] for number, line in jsonl_lines(records))
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
        for number, line in jsonl_lines(path):
            item = loads(line, file=path, line=number)
            if not isinstance(item, dict):
                raise InputError("not a JSON object line", file=path, line=number)
            record_id = item.get("record_id")
            yield positions.get(record_id, end) if isinstance(record_id, str) else end, line

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
