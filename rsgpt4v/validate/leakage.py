"""Image-level train/test leakage: the same picture in two splits (or two sources' splits).

Two images are the same when their files have identical bytes (sha256), or when their
perceptual hashes (``imagehash.phash`` of the RGB picture, 64 bits) differ in at most
``max_distance`` bits: a re-encoded, re-saved or slightly re-coloured copy. Near pairs are
found without comparing every pair: two hashes within ``d`` bits agree exactly on at least one of
``d + 1`` disjoint bit blocks (pigeonhole), so only hashes sharing a block value are compared.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsgpt4v.errors import InputError
from rsgpt4v.validate.settings import DEFAULT_MAX_DISTANCE

HOLDOUT_SPLITS = frozenset({"test", "val", "valid", "validation", "eval", "dev"})
HASH_BITS = 64
FINGERPRINT_WORKERS = 4
PHASH_SIDE = 256  # images are read decimated to this side: enough for an 8x8 DCT hash


@dataclass(frozen=True)
class ImageEntry:
    """One record's image: where it belongs and its two fingerprints."""

    record_id: str
    split: str
    sha256: str
    phash: int


@dataclass(frozen=True)
class Leak:
    """A record whose image also appears in another split, and the copy it leaks to."""

    record_id: str
    split: str
    other_id: str
    other_split: str
    distance: int  # phash bits; 0 with identical bytes


def fingerprint(path: Path) -> tuple[str, int]:
    """(sha256 of the file, 64-bit perceptual hash of its RGB picture)."""
    import imagehash
    from PIL import Image

    from rsgpt4v.raster import read_rgb8

    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise InputError(f"cannot read image: {error.strerror}", file=path) from None
    picture = Image.fromarray(read_rgb8(path, max_side=PHASH_SIDE))
    bits = imagehash.phash(picture).hash.flatten()
    return digest, int("".join("1" if b else "0" for b in bits), 2)


def find_leaks(
    entries: Iterable[ImageEntry], max_distance: int = DEFAULT_MAX_DISTANCE
) -> dict[str, Leak]:
    """The records to drop, keyed by record id: for each cross-split pair, the non-holdout side.

    A pair of a holdout split (``HOLDOUT_SPLITS``) and a training split drops the training copy,
    so the test set stays as published; a pair of two holdout or two training splits drops the
    record that sorts later by (split, id). Pairs within one split are not leakage.
    """
    entries = list(entries)
    leaks: dict[str, Leak] = {}
    for a, b, distance in _close_pairs(entries, max_distance):
        if a.split == b.split:
            continue
        keep, drop = sorted((a, b), key=_keep_order)
        if drop.record_id not in leaks or distance < leaks[drop.record_id].distance:
            leaks[drop.record_id] = Leak(
                drop.record_id, drop.split, keep.record_id, keep.split, distance
            )
    return leaks


def _keep_order(entry: ImageEntry) -> tuple[bool, str, str]:
    return entry.split.lower() not in HOLDOUT_SPLITS, entry.split, entry.record_id


def _close_pairs(
    entries: list[ImageEntry], max_distance: int
) -> Iterable[tuple[ImageEntry, ImageEntry, int]]:
    seen: set[tuple[int, int]] = set()
    by_digest: dict[str, list[int]] = defaultdict(list)
    for index, entry in enumerate(entries):
        by_digest[entry.sha256].append(index)
    for indices in by_digest.values():
        for n, i in enumerate(indices):
            for j in indices[n + 1 :]:
                seen.add((i, j))
                yield entries[i], entries[j], 0
    hashes = np.array([e.phash for e in entries], dtype=np.uint64)
    for block in _blocks(max_distance):
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, value in enumerate(hashes & np.uint64(block[1]) if len(hashes) else []):
            buckets[int(value)].append(index)
        for indices in buckets.values():
            for n, i in enumerate(indices):
                for j in indices[n + 1 :]:
                    distance = (entries[i].phash ^ entries[j].phash).bit_count()
                    if distance <= max_distance and (i, j) not in seen:
                        seen.add((i, j))
                        yield entries[i], entries[j], distance


def _blocks(max_distance: int) -> list[tuple[int, int]]:
    """``max_distance + 1`` disjoint bit masks covering the 64 bits: (index, mask)."""
    count = max(1, min(max_distance + 1, HASH_BITS))
    edges = np.linspace(0, HASH_BITS, count + 1).astype(int)
    return [
        (n, ((1 << int(hi - lo)) - 1) << int(lo))
        for n, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]


def fingerprint_records(
    records: Iterable[tuple[str, str, Path]],
    progress: Callable[[Iterable, int | None], Iterable] | None = None,
    workers: int = FINGERPRINT_WORKERS,
) -> list[ImageEntry]:
    """Fingerprints of ``(record id, split, image path)``; each distinct file is read once.

    Files are read by a few threads: decoding and hashing release the GIL for most of their time.
    """
    records = list(records)
    paths = list(dict.fromkeys(path for _, _, path in records))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        prints: Iterable = pool.map(fingerprint, paths)
        if progress is not None:
            prints = progress(prints, len(paths))
        found = dict(zip(paths, prints, strict=True))
    return [ImageEntry(record_id, split, *found[path]) for record_id, split, path in records]
