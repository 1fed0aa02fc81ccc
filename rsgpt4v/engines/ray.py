"""The Ray engine: a stage's units run as Ray Data tasks on a cluster.

``ray.init(address=...)`` joins an existing cluster (``--ray-address`` or ``RAY_ADDRESS``);
without an address a local instance starts for the run and stops after it. A session already
open in the process (a notebook, a test) is used as it is and left open.

Each task runs :meth:`~rsgpt4v.engines.stage.Stage.run_unit` on a worker and writes the unit's
rows, one JSON value per line, to its shard beside the output (``OUT.shards/``, atomically: a
retried task rewrites its shard, never adds one); the driver reads the shards back in unit order
for ``finish``, so the files are the local engine's, line for line. ``ray`` is an optional extra
(``pip install rsgpt4v[ray]``), imported only here, lazily.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from rsgpt4v.collector import older_objects_frozen
from rsgpt4v.engines.shards import remove_shards, shard_path, shards_folder
from rsgpt4v.engines.stage import Counts, FanOut, Row, Stage, Unit, UnitRun
from rsgpt4v.errors import RsgptError
from rsgpt4v.schema import JsonlWriter

SummaryT = TypeVar("SummaryT")
#: Rows written to a shard per write call.
_WRITE_BATCH = 4096


def import_ray():
    """The ``ray`` module, or an error saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RsgptError(
            "--engine ray needs Ray Data: pip install 'rsgpt4v[ray]' (or 'ray[data]')"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected: to ``address`` (or ``RAY_ADDRESS``), else a local instance for the run."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "a local instance"
        raise RsgptError(f"cannot connect to Ray at {where}: {error}") from None
    quiet_ray_data()
    try:
        yield ray
    finally:
        ray.shutdown()


def quiet_ray_data() -> None:
    """Ray Data's progress bars on a terminal only (they stand in for the local engine's bar);
    elsewhere (logs, CI) neither bars nor per-run INFO lines."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()
    context.print_on_execution_start = False
    if not context.enable_progress_bars:
        logging.getLogger("ray.data").setLevel(logging.WARNING)


class RayEngine:
    """Runs stages on the cluster of an open Ray session (:func:`ray_session`)."""

    name = "ray"

    def __init__(self, ray: Any) -> None:
        self.ray = ray

    def run(self, stage: Stage[SummaryT]) -> SummaryT:
        ray, actors = self.ray, []

        def share(factory: Callable[..., Any], *args: Any) -> _Shared:
            actors.append(ray.remote(num_cpus=0)(factory).remote(*args))
            return _Shared(actors[-1])

        folder = shards_folder(stage.shards_beside)
        fan_out = FanOut(
            workers=max(1, int(ray.cluster_resources().get("CPU", 1))),
            nodes=sum(node["Alive"] for node in ray.nodes()),
            folder=folder,
            share=share,
        )
        try:
            units = stage.units(fan_out)
            results = run_units(units, partial(_unit_to_shard, stage=stage, folder=str(folder)))
            return stage.finish(_ShardOutputs(results))
        finally:
            for actor in actors:
                ray.kill(actor)
            remove_shards(folder)


def _unit_to_shard(index: int, unit: Unit, *, stage: Stage[Any], folder: str) -> dict[str, Any]:
    """On a worker: run the unit, its rows to its shard as JSON lines; the shard and counts."""
    path = shard_path(folder, index)
    run = stage.run_unit(unit, None)
    with JsonlWriter(path) as writer:
        counts = _drain(run, writer)
    return {"shard": str(path), "counts": counts}


def _drain(run: UnitRun, writer: JsonlWriter) -> Counts:
    batch: list[str] = []
    while True:
        try:
            row = next(run)
        except StopIteration as end:
            writer.write_lines(batch)
            return end.value
        batch.append(json.dumps(row, ensure_ascii=False) + "\n")
        if len(batch) == _WRITE_BATCH:
            writer.write_lines(batch)
            batch = []


class _ShardOutputs:
    def __init__(self, results: list[dict[str, Any]]) -> None:
        self._results = results

    def rows(self) -> Iterator[Row]:
        for result in self._results:
            with open(result["shard"], encoding="utf-8") as handle:
                yield from map(json.loads, handle)

    @property
    def counts(self) -> list[Counts]:
        return [result["counts"] for result in self._results]


class _Shared:
    """An actor seen as the object it holds: ``await shared.method(*args)``."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):  # pickling looks up dunder names before _actor is set
            raise AttributeError(name)
        method = getattr(self._actor, name)

        async def call(*args: Any) -> Any:
            return await method.remote(*args)

        return call


def run_units(
    units: list[Unit], work: Callable[[int, Unit], dict[str, Any]], *, num_cpus: float = 1
) -> list[dict[str, Any]]:
    """``work(index, unit)`` for every unit, one Ray task per unit; results in unit order.

    A task whose worker dies (node lost, OOM kill, preemption) is run again by Ray Data; units
    are idempotent (each rewrites its own shard atomically), so a retry loses and repeats nothing.

    ``work`` returns a JSON-able summary (what it wrote, counts). An :class:`RsgptError` raised
    by a unit is carried back and raised here with its message, like the local engine's.
    """
    ray = import_ray()
    if not units:
        return []
    payload = [{"index": index, "unit": json.dumps(unit)} for index, unit in enumerate(units)]

    def apply(batch: dict[str, Any]) -> dict[str, list]:
        indexes, results = [], []
        for index, text in zip(batch["index"], batch["unit"], strict=True):
            try:
                with older_objects_frozen():
                    result = {"ok": work(int(index), json.loads(str(text)))}
            except RsgptError as error:
                result = {"error": str(error)}
            indexes.append(int(index))
            results.append(json.dumps(result))
        return {"index": indexes, "result": results}

    dataset = ray.data.from_items(payload, override_num_blocks=len(payload))
    rows = dataset.map_batches(apply, batch_size=1, num_cpus=num_cpus).take_all()
    results = [json.loads(row["result"]) for row in sorted(rows, key=lambda row: row["index"])]
    for result in results:
        if "error" in result:
            raise RsgptError(result["error"])
    return [result["ok"] for result in results]
