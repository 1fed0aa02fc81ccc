"""How the long streaming stages keep Python's cyclic garbage collector out of their way.

Convert, instruct and the Ray units make millions of small containers that live for one record
and form no cycles (reference counting frees them). Two measured remedies, one per cost:

- :func:`older_objects_frozen`: a full collection walks every object in the process, most of
  them made by imports (numpy, pydantic, rasterio, Ray). Frozen for the run (``gc.freeze``),
  they are skipped: 10-25 % of a DOTA conversion (bench/convert.py), a fifth of a Ray rules unit.
- :func:`fewer_collections`: at Python's first threshold (700 allocations) the collector runs
  every few records and walks the records a batch holds: ~7 % of the instruct stage.

Collections still happen, so a stage that does make cycles does not grow without bound.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: The first-generation threshold while :func:`fewer_collections` is in effect.
GC_ALLOCATIONS = 50_000


@contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Objects made before the block are left out of collections (a caller's freeze is kept)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The first-generation threshold raised to GC_ALLOCATIONS for the block, then restored."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_ALLOCATIONS), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
