"""The local engine: a stage's units run in this process, their rows handed straight to
``finish`` (a generator, so a unit's rows are written as they are made and memory stays flat)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from rsgpt4v.collector import older_objects_frozen
from rsgpt4v.engines.stage import Bars, Counts, Progress, Row, Stage, Unit

SummaryT = TypeVar("SummaryT")


class LocalEngine:
    name = "local"

    def __init__(self, bars: Bars | None = None) -> None:
        self.bars = bars

    def run(self, stage: Stage[SummaryT]) -> SummaryT:
        progress = self.bars(stage.description) if self.bars is not None else None
        with older_objects_frozen():  # the collector skips what the imports made
            return stage.finish(_LocalOutputs(stage, stage.units(None), progress))


class _LocalOutputs:
    def __init__(self, stage: Stage[Any], units: list[Unit], progress: Progress | None) -> None:
        self._stage, self._units, self._progress = stage, iter(units), progress
        self._counts: list[Counts] = []

    def rows(self) -> Iterator[Row]:
        for unit in self._units:  # one iterator: a unit runs once, however rows() is called
            counts = yield from self._stage.run_unit(unit, self._progress)
            self._counts.append(counts)

    @property
    def counts(self) -> list[Counts]:
        for _ in self.rows():  # units whose rows finish did not read (a stage without rows)
            pass
        return self._counts
