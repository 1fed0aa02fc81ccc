"""Connecting to Ray and running work units through Ray Data.

``ray.init(address=...)`` joins an existing cluster (``--ray-address`` or ``RAY_ADDRESS``);
without an address a local instance starts for the run and stops after it. A session already
open in the process (a notebook, a test) is used as it is and left open.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rsgpt4v.collector import older_objects_frozen
from rsgpt4v.errors import RsgptError

Unit = dict[str, Any]


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


def run_units(
    units: list[Unit], work: Callable[[Unit], dict[str, Any]], *, num_cpus: float = 1
) -> list[dict[str, Any]]:
    """``work(unit)`` for every unit, one Ray task per unit; results in unit order.

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
                    result = {"ok": work(json.loads(str(text)))}
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
