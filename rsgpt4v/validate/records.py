"""The records an instruction file is checked against, found by id or image path.

A records file can hold millions of tiles, so it is not held whole: one pass validates every
record (a bad line is reported with its line number) and keeps only what the index needs (id,
split, image path, class names per dataset) and where each line starts; a record is parsed again
when an instruction asks for it. Instructions come grouped by record
(``instruct`` writes them in record order), so a small cache of recent records means each is
parsed about once.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from rsgpt4v.schema import Record, read_jsonl
from rsgpt4v.validate.importer import ImageIndex
from rsgpt4v.validate.vocabulary import Vocabulary, mention_vocabulary

CACHED_RECORDS = 256


class RecordTable:
    """Records by id and by image path, each dataset's vocabulary, and every record's split.

    Use as a context manager (or call :meth:`close`): it keeps the records file open.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offsets: dict[str, int] = {}
        self._places: list[tuple[str, str, str]] = []  # (id, split, image path)
        seen: dict[str, set[str]] = {}
        entries = read_jsonl(self.path, Record)
        for offset, entry in zip(_line_offsets(self.path), entries, strict=True):
            self._offsets[entry.id] = offset
            split = sys.intern(entry.split)
            self._places.append((entry.id, split, entry.image.path))
            seen.setdefault(sys.intern(entry.dataset), set()).update(
                o.category for o in entry.objects
            )
        self.images = ImageIndex({image: record_id for record_id, _, image in self._places})
        self._seen = {dataset: frozenset(classes) for dataset, classes in seen.items()}
        self._cache: OrderedDict[str, Record] = OrderedDict()
        self._handle = self.path.open("rb")

    def __enter__(self) -> RecordTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def __len__(self) -> int:
        return len(self._offsets)

    def places(self) -> Iterator[tuple[str, str, str]]:
        """(record id, split, image path) of every record, in file order."""
        yield from self._places

    def find(self, record_id: str | None, image: str | None) -> Record | None:
        """The record of this id, else the one of this image path (see ``ImageIndex``)."""
        if not (record_id and record_id in self._offsets):
            record_id = self.images.find(image) if image else None
        return self._record(record_id) if record_id else None

    def vocabulary(self, record: Record) -> Vocabulary:
        return mention_vocabulary(record.dataset, self._seen.get(record.dataset, frozenset()))

    def _record(self, record_id: str) -> Record:
        cached = self._cache.get(record_id)
        if cached is not None:
            self._cache.move_to_end(record_id)
            return cached
        self._handle.seek(self._offsets[record_id])
        record = Record.model_validate_json(self._handle.readline())  # valid: read before
        self._cache[record_id] = record
        if len(self._cache) > CACHED_RECORDS:
            self._cache.popitem(last=False)
        return record


def _line_offsets(path: Path) -> Iterator[int]:
    """Byte offsets of the non-blank lines, in the order ``read_jsonl`` yields them."""
    with path.open("rb") as handle:
        offset = 0
        for line in handle:
            if line.strip():
                yield offset
            offset += len(line)
