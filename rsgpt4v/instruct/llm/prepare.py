"""What a record's requests need before the first call: its rendered image and object facts.

Decoding and shrinking an image is the costliest step of a request (a 1024-px PNG takes tens of
milliseconds; the request itself takes two or three of client CPU), so on big runs of big images
it is done in worker processes while the event loop only sends and receives; small images are
cheaper to prepare inline than to ship between processes. Workers are started with
``spawn`` (never ``fork``: the parent runs threads and an event loop). A failure is returned as
its message, since not every project exception survives pickling.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from rsgpt4v.errors import RsgptError
from rsgpt4v.instruct.attributes import object_facts
from rsgpt4v.instruct.llm.images import RenderedImage, render_image
from rsgpt4v.instruct.llm.passes import RecordContext
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.paths import under_root
from rsgpt4v.schema import Record, count_lines, read_jsonl

POOL_FROM_RECORDS = 64  # smaller runs prepare inline: starting workers would cost more
POOL_FROM_PIXELS = 512 * 512  # smaller images decode in about a millisecond: inline is cheaper
MAX_WORKERS = 4


@dataclass(frozen=True)
class PrepareOptions:
    image_root: Path | None
    detail: str
    max_side: int | None
    colour_facts: bool


@dataclass(frozen=True)
class Prepared:
    image: RenderedImage | None
    context: RecordContext


def prepare_record(record: Record, options: PrepareOptions) -> Prepared | str:
    """The record's image (when there is an image root) and facts, or why they failed."""
    root = options.image_root
    try:
        image = None
        if root is not None:
            path = under_root(root, record.image.path, entry=record.id)
            image = render_image(path, options.detail, options.max_side)
        facts = object_facts(record, root if options.colour_facts else None)
    except RsgptError as error:
        return str(error)
    return Prepared(image, RecordContext.of(record, facts))


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


class Preparer:
    """Prepares records inline or in a process pool; a context manager owning the pool."""

    def __init__(self, settings: LlmSettings, workers: int = 0) -> None:
        self.options = PrepareOptions(
            settings.image_root, settings.detail, settings.max_side, settings.colour_facts
        )
        self._pool = (
            ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers else None
        )

    async def __call__(self, record: Record) -> Prepared | str:
        if self._pool is None:
            return prepare_record(record, self.options)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, prepare_record, record, self.options)

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
