"""Engines: what runs a stage. ``local`` runs it in this process; ``ray`` fans it out over a
Ray cluster through Ray Data. Both run the same stage code (:mod:`rsgpt4v.engines.stage`) and
write the same files, line for line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from rsgpt4v.engines.local import LocalEngine
from rsgpt4v.engines.stage import Bars, Engine, Progress, Stage
from rsgpt4v.errors import InputError

ENGINES = ("local", "ray")
SummaryT = TypeVar("SummaryT")


def check_engine(name: str) -> str:
    """The engine name, or an error listing the known ones."""
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return name


@contextmanager
def open_engine(
    name: str = "local", address: str | None = None, bars: Bars | None = None
) -> Iterator[Engine]:
    """The engine ``name``, ready for one or more stages (Ray: one session for all of them).

    ``address``: the Ray cluster to join (default ``$RAY_ADDRESS``, else a local instance);
    ``bars``: the local engine's progress bars (Ray Data shows its own).
    """
    if check_engine(name) == "local":
        yield LocalEngine(bars)
        return
    from rsgpt4v.engines.ray import RayEngine, ray_session

    with ray_session(address) as ray:
        yield RayEngine(ray)


def run_stage(
    stage: Stage[SummaryT],
    engine: str = "local",
    address: str | None = None,
    progress: Progress | None = None,
) -> SummaryT:
    """Run one stage on the engine ``engine`` (``progress``: the local engine's bar); its
    summary."""
    bars = (lambda _description: progress) if progress is not None else None
    with open_engine(engine, address, bars) as running:
        return running.run(stage)
