"""One record table per process, shared by what runs there.

Building a :class:`~rsgpt4v.validate.records.RecordTable` reads the whole records file, so it is
built once: on the local engine both validate stages (and their ``finish``) use one table; a Ray
worker keeps its table for the later units it runs. A table is known by the file's path, size
and modification time, so a rewritten records file is read again.
"""

from __future__ import annotations

from pathlib import Path

from rsgpt4v.schema import existing_file
from rsgpt4v.validate.records import RecordTable

_tables: dict[tuple[str, int, int], RecordTable] = {}


def record_table(path: str | Path) -> RecordTable:
    """The table of the records file ``path`` (the one this process built last, if current)."""
    stat = existing_file(path).stat()  # a missing file: an error naming it
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _tables:
        close_record_tables()
        _tables[key] = RecordTable(path)
    return _tables[key]


def close_record_tables() -> None:
    """Close and forget this process's table (a run's driver, when the run ends)."""
    for table in _tables.values():
        table.close()
    _tables.clear()
