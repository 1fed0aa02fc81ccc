"""The ``ray`` engine: convert, tile, instruct and validate fanned out over a Ray cluster.

Every stage runs the same per-record functions as the local engine, through Ray Data: the input
is cut into work units (line ranges of a JSONL file, hash shards of records, or a converter's own
parts), ``ray.data.from_items(units).map_batches(...)`` runs one unit per task on the cluster, each
task writes its JSONL shard next to the output, and :mod:`rsgpt4v.scale.merge` joins the shards
back into the input's order. The output is therefore the local engine's file, line for line.
``ray`` is an optional extra (``pip install rsgpt4v[ray]``), imported only here, lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import import_module

from rsgpt4v.errors import InputError

ENGINES = ("local", "ray")


def check_engine(engine: str) -> str:
    """The engine name, or an error listing the known ones."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return engine


def engine_function(engine: str, local: Callable, ray: str, address: str | None) -> Callable:
    """The stage function of the engine: ``local`` itself, or ``ray`` ("module:function",
    imported only when chosen) joined to the cluster at ``address``."""
    if check_engine(engine) == "local":
        return local
    module, _, name = ray.partition(":")
    return partial(getattr(import_module(module), name), address=address)
