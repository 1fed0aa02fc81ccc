"""The one shape of every stage: settings, then ``units → run_unit → finish``.

A stage cuts its work into units (:meth:`Stage.units`: one unit on the local engine, many on a
cluster), does one unit at a time (:meth:`Stage.run_unit`: a generator that yields the unit's
rows, in order, and returns its counts), and writes its outputs from every unit's rows in unit
order (:meth:`Stage.finish`). An engine only carries rows and counts from ``run_unit`` to
``finish``: the local engine hands the generator over as it is (nothing is written twice), the
Ray engine writes each unit's rows to a shard on the worker and reads the shards back on the
driver. So both engines run the same stage code and write the same files.

Rows and counts cross machines: they are plain JSON values (never pickled).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

Unit = dict[str, Any]
Row = Any  # a JSON value
Counts = dict[str, Any]  # a JSON object
UnitRun = Generator[Row, None, Counts]
#: A progress bar: wraps items (and their total, if known) and yields them.
Progress = Callable[[Iterable[Any], int | None], Iterable[Any]]
#: Progress bars by description (the CLI's: a bar on a terminal, nothing elsewhere).
Bars = Callable[[str], Progress]
SummaryT = TypeVar("SummaryT", covariant=True)


@dataclass(frozen=True)
class FanOut:
    """What a stage knows of the cluster it is cut for.

    ``workers``: CPUs of the cluster; ``nodes``: machines (shared SQLite needs one);
    ``folder``: the run's shard folder on shared storage, for units that write files
    themselves; ``share(factory, *args)``: one object every unit calls (a Ray actor), e.g. a
    budget all workers draw on.
    """

    workers: int
    nodes: int
    folder: Path
    share: Callable[..., Any]


class Stage(Protocol[SummaryT]):
    """A pipeline stage, runnable by any engine (:mod:`rsgpt4v.engines`)."""

    #: What the local engine's progress bar says.
    description: str
    #: The file beside which a fanned-out run keeps its shards (``OUT.shards/``).
    shards_beside: Path

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        """Check the inputs and cut the work: one unit when ``fan_out`` is None (local)."""
        ...

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        """Do one unit: yield its rows in order, return its counts."""
        ...

    def finish(self, outputs: UnitOutputs) -> SummaryT:
        """Write the outputs from the rows of every unit, in unit order; the run's summary."""
        ...


class Engine(Protocol):
    """What runs stages: :class:`~rsgpt4v.engines.local.LocalEngine` or the Ray engine."""

    name: str

    def run(self, stage: Stage[SummaryT]) -> SummaryT: ...


class UnitOutputs(Protocol):
    """What the units of a run produced, as ``finish`` reads it."""

    def rows(self) -> Iterator[Row]:
        """Every unit's rows, unit after unit."""
        ...

    @property
    def counts(self) -> list[Counts]:
        """Each unit's counts, in unit order (units whose rows were not read are run first)."""
        ...
