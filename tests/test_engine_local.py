"""The local engine runs any stage shape in this process: rows go from a unit's generator
straight to ``finish`` (nothing written twice), and counts are there once the rows are read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rsgpt4v.engines import check_engine, run_stage
from rsgpt4v.engines.units import file_units, line_units, unit_lines
from rsgpt4v.errors import InputError


@dataclass
class Echo:
    """A stage whose units yield their lines, upper-cased; it notes the order things happen."""

    source: Path
    read_rows: bool = True
    events: list[str] = field(default_factory=list)
    description = "echo"

    @property
    def shards_beside(self) -> Path:
        return self.source

    def units(self, fan_out):
        self.events.append("units")
        return file_units(self.source, fan_out, 2)

    def run_unit(self, unit, progress):
        lines = 0
        for _, text in unit_lines(unit):
            self.events.append(f"yield {text.strip()}")
            yield text.strip().upper()
            lines += 1
        return {"lines": lines}

    def finish(self, outputs):
        rows = []
        if self.read_rows:
            for row in outputs.rows():
                self.events.append(f"got {row}")
                rows.append(row)
        return rows, [counts["lines"] for counts in outputs.counts]


def test_rows_stream_from_the_unit_into_finish(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("a\nb\n\nc\n")
    stage = Echo(source)
    rows, counts = run_stage(stage)
    assert rows == ["A", "B", "C"] and counts == [3]  # one unit locally, blank line skipped
    assert stage.events == ["units", "yield a", "got A", "yield b", "got B", "yield c", "got C"]
    assert list(tmp_path.iterdir()) == [source]  # no shard, no scratch file


def test_counts_run_the_units_a_stage_did_not_read(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("a\nb\n")
    rows, counts = run_stage(Echo(source, read_rows=False))
    assert rows == [] and counts == [2]


def test_line_units_cover_the_file_once_with_their_line_numbers(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f"{n}\n" for n in range(1, 8)) + "8")  # no final newline
    units = line_units(source, 3)
    assert [unit["line"] for unit in units] == [1, 4, 7]
    read = [pair for unit in units for pair in unit_lines(unit)]
    assert read == [(n, str(n) + ("\n" if n < 8 else "")) for n in range(1, 9)]


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"ok\n\xff\xfe\n")
    (unit,) = line_units(source, 10)
    with pytest.raises(InputError, match="not UTF-8") as raised:
        list(unit_lines(unit))
    assert raised.value.line == 2


def test_an_unknown_engine_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="known: local, ray"):
        check_engine("dask")
