"""What a record's requests need before the first call: its rendered image, object facts, the
objects its prompts list and the crops of the small ones (:mod:`rsgpt4v.instruct.llm.selection`).

Decoding and shrinking an image is the costliest step of a request (a 1024-px PNG takes tens of
milliseconds; the request itself takes two or three of client CPU), so it is never done on the
event loop. On big runs of big images it is done in worker processes, while the event loop only
sends and receives; otherwise in one thread beside the loop: rasterio and PIL release the GIL
while they decode and encode, so the loop goes on meanwhile (one thread measured best: more
only contend for the GIL). Small images are cheaper to prepare in that thread than to ship
between processes. Workers are started with ``spawn`` (never ``fork``: the parent runs threads
and an event loop). A failure is returned as its message, since not every project exception
survives pickling.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.errors import RsgptError
from rsgpt4v.instruct.attributes import object_facts
from rsgpt4v.instruct.llm.images import RenderedImage, render_crops, render_image
from rsgpt4v.instruct.llm.passes import RecordContext
from rsgpt4v.instruct.llm.selection import ObjectBudget, View
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.paths import under_root
from rsgpt4v.raster import gdal_env
from rsgpt4v.schema import Record, count_lines, read_jsonl

POOL_FROM_RECORDS = 64  # smaller runs use the thread: starting workers would cost more
POOL_FROM_PIXELS = 512 * 512  # smaller images decode in about a millisecond: the thread is cheaper
MAX_WORKERS = 4


@dataclass(frozen=True)
class PrepareOptions:
    image_root: Path | None
    detail: str
    max_side: int | None
    colour_facts: bool
    budget: ObjectBudget = field(default_factory=ObjectBudget)
    completeness: Mapping[str, LabelCompleteness] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    image: RenderedImage | None
    context: RecordContext
    crops: tuple[RenderedImage, ...] = ()  # the context's crop windows, in their order


def prepare_record(record: Record, options: PrepareOptions) -> Prepared | str:
    """The record's image (when there is an image root), facts, listed objects and the crops of
    the small ones, or why they failed."""
    root = options.image_root
    view = View.of(record.image, options.detail, options.max_side)
    try:
        facts = object_facts(record, root if options.colour_facts else None)
        labelling = options.completeness.get(record.dataset)
        context = RecordContext.of(record, facts, view, options.budget, labelling)
        image, crops = None, []
        if root is not None:
            path = under_root(root, record.image.path, entry=record.id)
            image = render_image(path, options.detail, options.max_side)
            windows = [crop.window for crop in context.selection.crops]
            crops = render_crops(path, windows, record.image.width, record.image.height)
    except RsgptError as error:
        return str(error)
    return Prepared(image, context, tuple(crops))


def pool_size(settings: LlmSettings, records_path: str | Path) -> int:
    """Worker processes: ``prepare_workers`` when set; else none for runs under
    ``POOL_FROM_RECORDS`` records or with images under ``POOL_FROM_PIXELS`` (judged by the first
    record), and up to ``MAX_WORKERS`` (one CPU left to the event loop) otherwise."""
    if settings.prepare_workers is not None:
        return max(settings.prepare_workers, 0)
    if count_lines(records_path) < POOL_FROM_RECORDS:
        return 0
    first = next(read_jsonl(records_path, Record), None)
    if first is None or first.image.width * first.image.height < POOL_FROM_PIXELS:
        return 0
    return max(min(MAX_WORKERS, (os.cpu_count() or 1) - 1), 0)


def _worker_setup() -> None:
    """A worker (process or thread) keeps one GDAL environment for all its reads
    (``raster.gdal_env``; GDAL environments are per thread)."""
    gdal_env().__enter__()


class Preparer:
    """Prepares records in ``workers`` processes, or in one thread when ``workers`` is 0; a
    context manager owning them."""

    def __init__(self, settings: LlmSettings, workers: int = 0) -> None:
        self.options = PrepareOptions(
            settings.image_root,
            settings.detail,
            settings.max_side,
            settings.colour_facts,
            ObjectBudget.of(settings),
            dict(settings.completeness),
        )
        self._pool: Executor = (
            ProcessPoolExecutor(workers, get_context("spawn"), initializer=_worker_setup)
            if workers
            else ThreadPoolExecutor(1, "rsgpt4v-prepare", initializer=_worker_setup)
        )

    async def __call__(self, record: Record) -> Prepared | str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, prepare_record, record, self.options)

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
