"""Local facts of each object, from its label and pixels: the local pass without an LLM.

Rule tasks phrase these facts (``local_attributes``, ``region_caption``, ``detailed_description``
…) and the LLM prompts show them as a table, so each fact has one documented rule whose
thresholds are the module constants below, and a test can recompute every sentence built from it.
A fact that cannot be stated truthfully is ``None`` (no GSD → no metres; a round object → no
orientation; a centre on a grid line → no grid cell), and rules leave it out.

- ``position``: the cell of a 3 x 3 grid holding the centre of the object's ``bbox``; None when the
  centre lies within ``GRID_MARGIN`` (a fraction of the image side) of an inner grid line.
- ``size_class``: the ``bbox`` area as a fraction of the image area, binned by ``SIZE_CLASSES``
  (the size the object appears in the image, not its real size, which is in metres below);
  ``area_px``: the polygon's area in pixels (the ``bbox`` area without a polygon).
- ``length_m`` / ``width_m``: the oriented box's long and short sides (``polygon_to_obb`` of the
  polygon) times ``image.gsd``; ``box_m``: the ``bbox`` width and height times the GSD (the only
  metric extent an object without a polygon has); ``area_m2``: the polygon's area times GSD².
  All four are None without a GSD, and for a ``truncated`` object (one marked so by tiling or the
  converter, or whose geometry reaches within ``EDGE_MARGIN_PX`` of the image border), whose full
  extent the image does not show.
- ``orientation``: the direction of the oriented box's long side, for polygons whose box is at
  least ``ORIENTATION_MIN_ELONGATION`` times longer than wide. The angle (degrees clockwise on
  screen from +x, see :mod:`rsgpt4v.geometry`) is binned into four axes 45° wide; within
  ``ORIENTATION_BIN_MARGIN_DEG`` of a bin edge nothing is claimed. North-up georeferenced images
  (a transform without rotation terms and with y pointing south) get compass words, others screen
  words (``COMPASS_AXES`` / ``SCREEN_AXES``).
- ``colour``: the dominant palette colour of the pixels inside the polygon, read only when an
  image root is given (see :mod:`rsgpt4v.instruct.colour`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np
import shapely

from rsgpt4v.geometry import polygon_to_obb
from rsgpt4v.paths import under_root
from rsgpt4v.schema import ImageInfo, Object, Record

GRID_CELLS = (
    ("top-left", "top", "top-right"),
    ("left", "centre", "right"),
    ("bottom-left", "bottom", "bottom-right"),
)
GRID_MARGIN = 0.02  # a centre this close (fraction of the side) to an inner grid line: no cell
SIZE_CLASSES = (("tiny", 0.001), ("small", 0.01), ("medium", 0.05), ("large", math.inf))
EDGE_MARGIN_PX = 1.0  # geometry this close to the image border may continue beyond it
ORIENTATION_MIN_ELONGATION = 1.3  # long side / short side; rounder objects have no orientation
ORIENTATION_BIN_MARGIN_DEG = 5.0
# Axis of the long side by its angle: east-west within 22.5° of +x, north-south within 22.5° of
# ±90°; between them a diagonal, named by where it points on screen (+y is down, i.e. south).
COMPASS_AXES = {
    "ew": "east-west",
    "ns": "north-south",
    "nwse": "northwest-southeast",
    "nesw": "northeast-southwest",
}
SCREEN_AXES = {
    "ew": "horizontal",
    "ns": "vertical",
    "nwse": "falling diagonal",  # top-left to bottom-right
    "nesw": "rising diagonal",  # bottom-left to top-right
}
MAX_COLOUR_OBJECTS = 64  # objects per record whose pixels are read: the first ones in its order


class ObjectFacts(NamedTuple):
    """What the label and pixels say about one object; None where nothing can be claimed."""

    id: int
    category: str
    bbox: tuple[float, float, float, float]
    centre: tuple[float, float]
    position: str | None
    size_class: str
    area_fraction: float
    area_px: float
    obb: tuple[float, float, float, float, float] | None
    length_m: float | None
    width_m: float | None
    box_m: tuple[float, float] | None
    area_m2: float | None
    orientation: str | None
    colour: str | None
    truncated: bool
    difficult: bool

    @property
    def size_px(self) -> float:
        """The object's length scale: its oriented box's long side, else the longer bbox side."""
        return self.obb[2] if self.obb is not None else max(self.bbox[2], self.bbox[3])

    def as_row(self) -> dict[str, object]:
        """The facts as a flat, JSON-ready row (the object table of the LLM prompts)."""
        row = self._asdict()
        row.pop("obb")
        return row


def object_facts(
    record: Record, image_root: str | Path | None = None, *, colour_limit: int = MAX_COLOUR_OBJECTS
) -> list[ObjectFacts]:
    """The facts of every object of a record, in the record's order.

    Pixels are read only with an ``image_root`` (the folder record image paths are relative to),
    and only for the first ``colour_limit`` objects; the rest is label arithmetic, vectorised.
    """
    return many_object_facts([record], image_root, colour_limit=colour_limit)[0]


def many_object_facts(
    records: Sequence[Record],
    image_root: str | Path | None = None,
    *,
    colour_limit: int = MAX_COLOUR_OBJECTS,
) -> list[list[ObjectFacts]]:
    """:func:`object_facts` of each record, the arithmetic of all their objects done at once.

    A record has a few dozen objects, too few to pay for numpy's cost per call; one pass over
    the objects of many records costs little more than one over a single record's.
    """
    counts = [len(r.objects) for r in records]
    objects = [o for r in records for o in r.objects]
    if not objects:
        return [[] for _ in records]
    images = [r.image for r in records]
    sizes = np.repeat(np.array([(i.width, i.height) for i in images], dtype=float), counts, 0)
    gsd = np.repeat(np.array([np.nan if i.gsd is None else i.gsd for i in images]), counts)
    north_up = np.repeat([is_north_up(i) for i in images], counts).tolist()
    boxes = np.fromiter(_chain(o.bbox for o in objects), float, 4 * len(objects)).reshape(-1, 4)
    centres = boxes[:, :2] + boxes[:, 2:] / 2.0
    fractions = boxes[:, 2] * boxes[:, 3] / (sizes[:, 0] * sizes[:, 1])
    size_index = np.searchsorted([t for _, t in SIZE_CLASSES], fractions, side="right")
    size_index = np.minimum(size_index, len(SIZE_CLASSES) - 1).tolist()
    obbs, areas, bounds = _geometry(objects, boxes)
    has_obb, has_area = ~np.isnan(obbs[:, 0]), ~np.isnan(areas)
    truncated = _truncated(objects, bounds, sizes)
    metric = ~np.isnan(gsd) & ~truncated
    colours: list[str | None] = []
    for record, count in zip(records, counts, strict=True):
        found = _colours(record, image_root, colour_limit)[:count]
        colours += found + [None] * (count - len(found))
    columns = (
        [o.id for o in objects],
        [o.category for o in objects],
        [tuple(o.bbox) for o in objects],
        list(zip(*centres.T.tolist(), strict=True)),
        grid_positions(centres, sizes),
        [SIZE_CLASSES[i][0] for i in size_index],
        fractions.tolist(),
        np.where(has_area, areas, boxes[:, 2] * boxes[:, 3]).tolist(),
        _or_none(list(map(tuple, obbs.tolist())), has_obb),
        _or_none((obbs[:, 2] * gsd).tolist(), metric & has_obb),
        _or_none((obbs[:, 3] * gsd).tolist(), metric & has_obb),
        _or_none(list(zip(*(boxes[:, 2:] * gsd[:, np.newaxis]).T.tolist(), strict=True)), metric),
        _or_none((areas * gsd * gsd).tolist(), metric & has_area),
        _orientations(obbs, has_obb, north_up),
        colours,
        truncated.tolist(),
        [o.difficult for o in objects],
    )
    facts = list(map(ObjectFacts._make, zip(*columns, strict=True)))
    ends = np.cumsum(counts).tolist()
    return [facts[end - count : end] for end, count in zip(ends, counts, strict=True)]


def _or_none(values: list, keep: np.ndarray) -> list:
    return [value if kept else None for value, kept in zip(values, keep.tolist(), strict=True)]


_facts_cache: dict[int, tuple[Record, Path | None, list[ObjectFacts]]] = {}
MAX_CACHED_RECORDS = 1024  # records whose facts are kept (a batch of the instruct stage)


def cache_object_facts(records: Sequence[Record], image_root: Path | None = None) -> None:
    """Compute the facts of many records at once and keep them for :func:`cached_object_facts`.

    What was kept before is dropped, so memory holds one batch of records.
    """
    _facts_cache.clear()
    for record, facts in zip(records, many_object_facts(records, image_root), strict=True):
        _facts_cache[id(record)] = (record, image_root, facts)


def cached_object_facts(record: Record, image_root: Path | None = None) -> list[ObjectFacts]:
    """:func:`object_facts`, computed once for the several rule tasks run on the same record.

    Matched by identity: the instruct stage computes the facts of a batch of records
    (:func:`cache_object_facts`) before their tasks run, and records are not changed after
    reading. A record outside the batch has its facts computed alone and kept.
    """
    entry = _facts_cache.get(id(record))
    if entry is None or entry[0] is not record or entry[1] != image_root:
        if len(_facts_cache) >= MAX_CACHED_RECORDS:
            _facts_cache.clear()
        entry = (record, image_root, object_facts(record, image_root))
        _facts_cache[id(record)] = entry
    return entry[2]


_CELL_NAMES = (*(cell for row in GRID_CELLS for cell in row), None)


def grid_positions(centres: np.ndarray, sizes: np.ndarray) -> list[str | None]:
    """3 x 3 grid cell name of each (x, y) centre; None near an inner grid line.

    ``sizes`` holds the (width, height) of each centre's image, (N, 2), or one (2,) for all.
    """
    fractions = centres / sizes
    cells = np.clip((fractions * 3).astype(int), 0, 2)
    near_line = np.minimum(np.abs(fractions - 1 / 3), np.abs(fractions - 2 / 3)) < GRID_MARGIN
    index = np.where(near_line.any(axis=1), len(_CELL_NAMES) - 1, cells[:, 1] * 3 + cells[:, 0])
    return [_CELL_NAMES[i] for i in index.tolist()]


def is_north_up(image: ImageInfo) -> bool:
    """True for a georeferenced image whose rows run west-east and whose columns run north-south."""
    t = image.transform
    return image.crs is not None and t is not None and t[2] == 0 and t[4] == 0 and t[5] < 0 < t[1]


def axis_of(angle: float) -> str | None:
    """``ew``/``ns``/``nwse``/``nesw`` for a screen angle in degrees; None near a bin edge."""
    folded = (angle + 90.0) % 180.0 - 90.0  # [-90, 90)
    for edge in (-67.5, -22.5, 22.5, 67.5):
        if abs(folded - edge) < ORIENTATION_BIN_MARGIN_DEG:
            return None
    if abs(folded) < 22.5:
        return "ew"
    if abs(folded) > 67.5:
        return "ns"
    return "nwse" if folded > 0 else "nesw"


def orientation_of(obb: tuple[float, float, float, float, float], north_up: bool) -> str | None:
    """The orientation word of an oriented box, or None (round, degenerate or near a bin edge)."""
    _, _, w, h, angle = obb
    if w <= 0 or w < ORIENTATION_MIN_ELONGATION * h:
        return None
    return direction_name(angle, north_up)


def direction_name(angle: float, north_up: bool) -> str | None:
    """Compass (north-up images) or screen word of a line's screen angle; None near a bin edge."""
    axis = axis_of(angle)
    if axis is None:
        return None
    return (COMPASS_AXES if north_up else SCREEN_AXES)[axis]


def _geometry(
    objects: Sequence[Object], boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 5) OBBs and (N,) areas of the polygons (NaN rows without one), (N, 4) unclipped bounds.

    Convex quadrilaterals (DOTA-style labels, the vast majority) take one vectorised pass of the
    same minimum-area-rectangle rule as :func:`rsgpt4v.geometry.polygon_to_obb`; any other
    polygon goes through that function and shapely, one at a time.
    """
    obbs = np.full((len(objects), 5), np.nan)
    areas = np.full(len(objects), np.nan)
    bounds = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    quads = [i for i, o in enumerate(objects) if o.polygon is not None and len(o.polygon) == 4]
    if quads:
        corners = _chain(_chain(objects[i].polygon for i in quads))
        points = np.fromiter(corners, float, 8 * len(quads)).reshape(-1, 4, 2)
        bounds[quads] = np.concatenate([_min4(points), _max4(points)], axis=1)
        quad_boxes, convex = convex_quad_obbs(points)
        x, y = points[..., 0], points[..., 1]
        shoelace = 0.5 * np.abs((x * y[:, _NEXT] - x[:, _NEXT] * y).sum(axis=1))
        rows = np.asarray(quads)[convex]
        obbs[rows], areas[rows] = quad_boxes[convex], shoelace[convex]
    done = ~np.isnan(areas)
    for i in np.flatnonzero(~done).tolist():
        polygon = objects[i].polygon
        if polygon is not None:
            points = np.asarray(polygon, dtype=float)
            bounds[i] = np.concatenate([points.min(axis=0), points.max(axis=0)])
            obbs[i] = polygon_to_obb(points)
            areas[i] = float(shapely.area(shapely.make_valid(shapely.Polygon(points))))
    return obbs, areas, bounds


def _truncated(objects: Sequence[Object], bounds: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Objects marked truncated, or whose geometry reaches the image border (within a margin).

    ``sizes`` is the (width, height) of each object's image.
    """
    m = EDGE_MARGIN_PX
    at_edge = (bounds[:, 0] < m) | (bounds[:, 1] < m)
    at_edge |= (bounds[:, 2] > sizes[:, 0] - m) | (bounds[:, 3] > sizes[:, 1] - m)
    return at_edge | np.array([bool(o.attributes.get("truncated")) for o in objects])


_AXES = (None, "ew", "ns", "nwse", "nesw")  # the axis codes of _axis_codes


def _axis_codes(angles: np.ndarray) -> np.ndarray:
    """:func:`axis_of` of many angles: indexes into ``_AXES`` (0 where axis_of says None)."""
    folded = (angles + 90.0) % 180.0 - 90.0  # [-90, 90)
    codes = np.where(folded > 0, 3, 4)
    codes = np.where(np.abs(folded) > 67.5, 2, codes)
    codes = np.where(np.abs(folded) < 22.5, 1, codes)
    for edge in (-67.5, -22.5, 22.5, 67.5):
        codes[np.abs(folded - edge) < ORIENTATION_BIN_MARGIN_DEG] = 0
    return codes


def _orientations(obbs: np.ndarray, has_obb: np.ndarray, north_up: list[bool]) -> list[str | None]:
    """:func:`orientation_of` of each (N, 5) OBB row (None for rows without an OBB)."""
    w, h = obbs[:, 2], obbs[:, 3]
    elongated = has_obb & (w > 0) & ~(w < ORIENTATION_MIN_ELONGATION * h)
    codes = np.where(elongated, _axis_codes(np.nan_to_num(obbs[:, 4])), 0).tolist()
    return [
        None if code == 0 else (COMPASS_AXES if up else SCREEN_AXES)[_AXES[code]]
        for code, up in zip(codes, north_up, strict=True)
    ]


_chain = chain.from_iterable  # flat lists of numbers make arrays faster than nested ones
_NEXT = np.array([1, 2, 3, 0])  # each quad vertex's successor


def convex_quad_obbs(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``polygon_to_obb`` of many quadrilaterals at once: (K, 5) boxes and a (K,) convex mask.

    For a convex quad the hull is the quad itself, so each of its 4 edges is tried as a side of
    the rectangle, as :func:`polygon_to_obb` does; rows of non-convex or degenerate quads are
    left for that function (mask False). Where two edges give the same minimal area (always so
    for a rectangle), either may be chosen: the rectangles have equal area, and for a rectangle
    equal sides and angle (modulo 180°).
    """
    # Reductions over the 4 corners are written out: numpy's reductions along a short axis cost
    # far more per element (the results are the same to the last bit: mean sums in this order).
    origin = ((points[:, 0] + points[:, 1] + points[:, 2] + points[:, 3]) / 4)[:, np.newaxis]
    local = points - origin
    edges = local[:, _NEXT] - local
    lengths = np.hypot(edges[..., 0], edges[..., 1])
    following = edges[:, _NEXT]
    turn = edges[..., 0] * following[..., 1] - edges[..., 1] * following[..., 0]
    convex = _all4(lengths > 0) & (_all4(turn > 0) | _all4(turn < 0))
    along = edges / np.where(lengths > 0, lengths, 1.0)[..., np.newaxis]
    across = np.stack([-along[..., 1], along[..., 0]], axis=-1)
    spans_along = local @ along.transpose(0, 2, 1)  # (K, point, edge)
    spans_across = local @ across.transpose(0, 2, 1)
    low_along, high_along = _min4(spans_along), _max4(spans_along)
    low_across, high_across = _min4(spans_across), _max4(spans_across)
    extent_along, extent_across = high_along - low_along, high_across - low_across
    rows = np.arange(len(points))
    best = np.argmin(extent_along * extent_across, axis=1)
    middle = (low_along + high_along)[rows, best] / 2.0
    middle_across = (low_across + high_across)[rows, best] / 2.0
    side, normal = along[rows, best], across[rows, best]
    centre = origin[:, 0] + middle[:, np.newaxis] * side + middle_across[:, np.newaxis] * normal
    w, h = extent_along[rows, best], extent_across[rows, best]
    swap = w < h
    w, h = np.where(swap, h, w), np.where(swap, w, h)
    side = np.where(swap[:, np.newaxis], normal, side)
    period = np.where(np.abs(w - h) <= 1e-9 * np.maximum(1.0, np.abs(h)), 90.0, 180.0)
    angle = np.degrees(np.arctan2(side[:, 1], side[:, 0]))
    angle = (angle + period / 2.0) % period - period / 2.0
    angle = np.where(angle >= period / 2.0, angle - period, angle)
    return np.stack([centre[:, 0], centre[:, 1], w, h, angle], axis=1), convex


def _min4(values: np.ndarray) -> np.ndarray:
    """``values.min(axis=1)`` for 4 rows along axis 1 (quad corners or edges)."""
    return np.minimum(
        np.minimum(values[:, 0], values[:, 1]), np.minimum(values[:, 2], values[:, 3])
    )


def _max4(values: np.ndarray) -> np.ndarray:
    """``values.max(axis=1)`` for 4 rows along axis 1."""
    return np.maximum(
        np.maximum(values[:, 0], values[:, 1]), np.maximum(values[:, 2], values[:, 3])
    )


def _all4(values: np.ndarray) -> np.ndarray:
    """``values.all(axis=1)`` for 4 rows along axis 1."""
    return values[:, 0] & values[:, 1] & values[:, 2] & values[:, 3]


def _colours(record: Record, image_root: str | Path | None, limit: int) -> list[str | None]:
    """Dominant colour of the first ``limit`` objects; nothing without an image root."""
    if image_root is None or limit <= 0:
        return []
    from rsgpt4v.instruct.colour import ColourReader

    with ColourReader(under_root(image_root, record.image.path, entry=record.id)) as reader:
        return [reader.colour_of(o.bbox, o.polygon) for o in record.objects[:limit]]
