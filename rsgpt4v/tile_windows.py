"""Where the tiles of a large scene go, and what happens to the objects that a tile edge cuts.

Pure geometry, no pixels: :func:`plan_windows` lays out the window grid and
:class:`SceneObjects` decides, per window, which objects a tile keeps and in what shape. The two
modes reproduce the two split tools that "DOTA split" data comes from (DOTA_devkit
``ImgSplit.py`` and mmrotate ``tools/data/dota/split/img_split.py``, single scale, rate 1):

``devkit`` — DOTA_devkit ``ImgSplit``
    Window starts 0, slide, 2·slide, … with the last one snapped to ``max(W - size, 0)``; names
    ``{stem}__1__{left}___{up}``. Objects are measured against the devkit's label rectangle,
    ``right = min(left + size, W - 1)`` (its ``- 1`` kept). IoF 1: the polygon is shifted. IoF
    in (0, 1): the intersection replaces it; 5 vertices → the shortest edge merged into its
    midpoint, fewer than 4 or more than 5 → dropped; corners cyclically re-ordered to fit the
    original, then clamped to [1, size]; difficult 2 (``difficult`` + ``truncated``) when
    IoF <= thr, else the original flag.
``keep`` — mmrotate ``img_split``
    ``n = 1 if W <= size else ceil((W - size) / step + 1)`` starts ``step·i``, the last snapped
    to ``W - size``; names ``{stem}__{size}__{x}___{y}``. IoF against the full ``size x size``
    window; objects with IoF >= thr are kept whole, only translated (coordinates may be negative
    or past the tile), the others dropped; IoF < 1 → difficult 2.

Deliberate differences: coordinates stay floats (the devkit truncates them with ``int()``,
moving objects by up to a pixel); tiles are never padded (mmrotate pads border windows to
``size``; here only a scene smaller than ``size`` has a smaller tile); no image rescaling
(``rate``) and no ``img_rate_thr`` (with one size every window lies inside the scene, so it never
removes one); a clip that falls into several pieces keeps the largest (the devkit crashes on it);
a record ``bbox`` must have area, so a devkit remnant that clamping flattens is counted and left
out instead of written. Objects without a polygon (HBB sources) are cut as their box.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from rsgpt4v.errors import InputError
from rsgpt4v.geometry import (
    clip_polygon_to_window,
    intersection_over_object,
    polygons_to_clipped_bboxes,
)
from rsgpt4v.schema import Object

MODES = ("devkit", "keep")


@dataclass(frozen=True)
class TileWindow:
    """One tile: its pixels in the scene and the rectangle its objects are measured against."""

    x: int
    y: int
    width: int  # clipped to the scene: tiles are never padded
    height: int
    label_box: tuple[float, float, float, float]  # [x, y, w, h] for IoF and clipping
    size: int  # the nominal tile size (the devkit clamps clipped corners to it)
    suffix: str  # appended to the scene id and file stem, e.g. "__1__476___76"

    @property
    def bounds(self) -> list[int]:
        """The record's ``window``: ``[x, y, w, h]`` in the parent scene."""
        return [self.x, self.y, self.width, self.height]


def check_tiling(size: int, gap: int, iof: float, mode: str) -> None:
    """Refuse settings that would loop forever or keep nothing, with the value at fault."""
    if mode not in MODES:
        raise InputError(f"unknown tiling mode {mode!r}; known: {', '.join(MODES)}")
    if size <= 0:
        raise InputError("tile size must be a positive number of pixels", value=size)
    if not 0 <= gap < size:
        raise InputError(f"gap must be at least 0 and less than the size ({size})", value=gap)
    if not 0 < iof <= 1:
        raise InputError("IoF threshold must be in (0, 1]", value=iof)


def devkit_starts(length: int, size: int, gap: int) -> list[int]:
    """ImgSplit's loop: step by ``size - gap`` until a window reaches the end, then snap it."""
    starts, start = [], 0
    while True:
        if start + size >= length:
            starts.append(max(length - size, 0))
            return starts
        starts.append(start)
        start += size - gap


def mmrotate_starts(length: int, size: int, gap: int) -> list[int]:
    """img_split's ``get_sliding_window`` along one axis."""
    step = size - gap
    count = 1 if length <= size else math.ceil((length - size) / step + 1)
    starts = [step * i for i in range(count)]
    if len(starts) > 1 and starts[-1] + size > length:
        starts[-1] = length - size
    return starts


def plan_windows(width: int, height: int, size: int, gap: int, mode: str) -> list[TileWindow]:
    """Every window of a scene, row by row (rows of tiles share source blocks in the cache)."""
    starts = devkit_starts if mode == "devkit" else mmrotate_starts
    windows = []
    for y in starts(height, size, gap):
        for x in starts(width, size, gap):
            if mode == "devkit":
                box = (x, y, min(x + size, width - 1) - x, min(y + size, height - 1) - y)
                suffix = f"__1__{x}___{y}"
            else:
                box, suffix = (x, y, size, size), f"__{size}__{x}___{y}"
            w, h = min(size, width - x), min(size, height - y)
            windows.append(TileWindow(x, y, w, h, tuple(float(v) for v in box), size, suffix))
    return windows


def merge_shortest_edge(points: np.ndarray) -> np.ndarray:
    """A pentagon as a quad: the shortest edge's two ends become their midpoint (GetPoly4FromPoly5).

    Edge i joins vertex i and i + 1 (edge 4 closes the ring), the first shortest one wins.
    """
    edges = np.linalg.norm(np.roll(points, -1, axis=0) - points, axis=1)
    shortest = int(np.argmin(edges))
    following = (shortest + 1) % 5
    merged = points.copy()
    merged[shortest] = (points[shortest] + points[following]) / 2.0
    return np.delete(merged, following, axis=0)


def best_point_order(quad: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The cyclic rotation of quad closest to the original corners (choose_best_pointorder)."""
    rotations = [np.roll(quad, -k, axis=0) for k in range(4)]
    distances = [float(((r - original) ** 2).sum()) for r in rotations]
    return rotations[int(np.argmin(distances))]


@dataclass
class SceneObjects:
    """A scene's objects as shapes, built once and queried for every window.

    Objects without area can never be in a tile (both tools skip them); they are counted, as are
    objects that end up in no tile at all (e.g. larger than a tile, so IoF < thr everywhere).
    """

    objects: Sequence[Object]
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.points = [_corners(item) for item in self.objects]
        shapes = np.array([shapely.Polygon(p) for p in self.points], dtype=object)
        invalid = ~shapely.is_valid(shapes) if len(shapes) else np.zeros(0, dtype=bool)
        shapes[invalid] = shapely.make_valid(shapes[invalid])
        self.shapes = shapes
        self.usable = np.flatnonzero(shapely.area(shapes) > 0) if len(shapes) else np.zeros(0, int)
        self.tree = shapely.STRtree(shapes[self.usable])
        self.placed = np.zeros(len(shapes), dtype=bool)
        self.whole: list[
            frozenset[int]
        ] = []  # per window asked, in order: scene objects held whole
        self.cut: list[list[int]] = []  # per window asked: ids of its objects the border cuts
        if len(self.usable) < len(shapes):
            self.counts["objects without area, in no tile"] += len(shapes) - len(self.usable)

    def in_window(self, window: TileWindow, mode: str, iof_threshold: float) -> list[Object]:
        """The objects one tile keeps, in the tile's pixel frame, renumbered from 0."""
        x, y, w, h = window.label_box
        hits = np.sort(self.usable[self.tree.query(shapely.box(x, y, x + w, y + h))])
        if not len(hits):
            self.whole.append(frozenset())
            self.cut.append([])
            return []
        iofs = intersection_over_object(self.shapes[hits], window.label_box)
        self.whole.append(frozenset(hits[iofs >= 1].tolist()))
        shift = np.array([window.x, window.y], dtype=float)
        if mode == "keep":
            keep = iofs >= iof_threshold
            placed = [
                (i, self.points[i] - shift, bool(iof < 1))
                for i, iof in zip(hits[keep], iofs[keep], strict=True)
            ]
        else:
            placed = [(i, self.points[i] - shift, False) for i in hits[iofs >= 1]]
            cut = (iofs > 0) & (iofs < 1)
            for index, iof in zip(hits[cut], iofs[cut], strict=True):
                remnant = self._devkit_remnant(index, window)
                if remnant is not None:
                    placed.append((index, remnant, bool(iof <= iof_threshold)))
            placed.sort(key=lambda item: item[0])
        objects, sources = self._objects(placed, window)
        whole = self.whole[-1]
        self.cut.append([o.id for o, i in zip(objects, sources, strict=True) if i not in whole])
        return objects

    def unplaced(self) -> int:
        """Objects with area that no tile kept; call after the last window."""
        return int((~self.placed[self.usable]).sum())

    def _devkit_remnant(self, index: int, window: TileWindow) -> np.ndarray | None:
        """The devkit's clipped quad in tile pixels, or None where ImgSplit drops the remnant."""
        original = self.points[index]
        clipped = clip_polygon_to_window(original, window.label_box)
        if clipped is None or len(clipped) not in (4, 5):
            self.counts["tile remnants dropped (devkit keeps 4 or 5 corners)"] += 1
            return None
        quad = np.asarray(clipped, dtype=float)
        if len(quad) == 5:
            quad = merge_shortest_edge(quad)
        if len(original) == 4:
            quad = best_point_order(quad, original)
        quad -= np.array([window.x, window.y], dtype=float)
        # ImgSplit: a clipped coordinate <= 1 becomes 1, one >= subsize becomes subsize
        return np.where(quad <= 1.0, 1.0, np.where(quad >= window.size, float(window.size), quad))

    def _objects(
        self, placed: list[tuple[int, np.ndarray, bool]], window: TileWindow
    ) -> tuple[list[Object], list[int]]:
        """Placed outlines as record objects, their boxes clipped to the tile in one pass, and
        the scene index of each."""
        if not placed:
            return [], []
        bounds = np.array([[*p.min(axis=0), *p.max(axis=0)] for _, p, _ in placed])
        boxes = polygons_to_clipped_bboxes(shapely.box(*bounds.T), window.width, window.height)
        kept: list[Object] = []
        sources: list[int] = []
        for (index, points, truncated), bbox in zip(placed, boxes, strict=True):
            if np.isnan(bbox).any():
                self.counts["tile remnants without area inside the tile"] += 1
                continue
            source = self.objects[index]
            attributes = {**source.attributes, **({"truncated": True} if truncated else {})}
            kept.append(
                Object(
                    id=len(kept),
                    category=source.category,
                    bbox=bbox.tolist(),
                    polygon=points.tolist() if source.polygon is not None else None,
                    difficult=source.difficult or truncated,
                    attributes=attributes,
                )
            )
            sources.append(int(index))
            self.placed[index] = True
        return kept, sources


def _corners(item: Object) -> np.ndarray:
    """An object's outline: its polygon, or its box's four corners for HBB-only sources."""
    if item.polygon is not None:
        return np.asarray(item.polygon, dtype=float)
    x, y, w, h = item.bbox
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


#: A tile whose whole objects are at least this share already held whole by a tile taken before
#: it repeats that tile: its scene-level questions (counts, lists, descriptions) are not asked.
REPEAT_SHARE = 0.5


def repeated_tiles(whole: Sequence[frozenset[int]]) -> list[int | None]:
    """For each tile, the index of an earlier-taken tile it repeats, or None.

    Tiles are taken in order of how many objects they hold whole (more first, then tile order);
    a tile repeats when at least :data:`REPEAT_SHARE` of its whole objects are held whole by the
    tiles taken before it, and names the taken tile it shares most with. Four 1024-px tiles of a
    1182-px scene overlap by 85-92%: one is asked about, three repeat it.
    """
    repeats: list[int | None] = [None] * len(whole)
    covered: set[int] = set()
    taken: list[int] = []
    for tile in sorted(range(len(whole)), key=lambda t: (-len(whole[t]), t)):
        objects = whole[tile]
        if objects and len(objects & covered) >= REPEAT_SHARE * len(objects):
            repeats[tile] = max(taken, key=lambda t: (len(whole[t] & objects), -t))
            continue
        taken.append(tile)
        covered |= objects
    return repeats
