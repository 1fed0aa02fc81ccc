"""Pixel geometry shared by every stage: boxes, polygons, oriented boxes, clipping and IoF.

One module owns the coordinate conventions so converters, tiling, validation and export agree:

- Pixel coordinates: origin at the image's top-left corner, x to the right, y down, floats.
- ``bbox`` is COCO ``[x, y, w, h]``; a window is ``[x, y, w, h]`` too.
- A polygon is a sequence of ``[x, y]`` points (N x 2, N >= 3) without a closing point.
- OBB ``(cx, cy, w, h, angle)``: angle in degrees, measured from the +x axis towards +y, which is
  **clockwise on screen** because y points down; it is the direction of the side of length ``w``.
  :func:`polygon_to_obb` returns the long-side form ("le90"): ``w >= h`` and angle in [-90, 90).
  For a square (``w == h`` within 1e-9) the angle is reported in [-45, 45).
- :func:`obb_to_polygon` returns the corners (-w/2,-h/2), (+w/2,-h/2), (+w/2,+h/2), (-w/2,+h/2) of
  the box frame, rotated by angle and moved to (cx, cy): clockwise on screen starting from the
  top-left corner when angle = 0, the order DOTA labels use (positive shoelace area).
- Coordinates must be finite: NaN would drop a box silently and inf would stretch it to the image
  edge, so the box and polygon functions raise :class:`GeometryError` for them. Before GEOS
  work on source shapes (repair, overlays) converters call :func:`check_coordinates`, which
  also refuses values beyond ``MAX_COORDINATE``: squared in areas they overflow float64, and
  GEOS then fails on NaN/Inf with a traceback that would lose the whole scene. A
  ``GeometryError`` is an ``InputError``, so a converter rejects the one object
  (``--skip-bad``) or stops naming it.

The many-object functions run on arrays with shapely 2's vectorised functions, because tiling asks
for the IoF of thousands of polygons per window. They also take an array of shapely polygons, so a
caller can build them once per image and reuse them for every window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry.polygon import orient

from rsgpt4v.errors import InputError

_SQUARE_TOL = 1e-9
# Beyond any real image (1e9 px is 10,000 km at 1 cm) or map CRS (metres, feet, degrees); squared
# in areas (1e18) still exact enough, where 1e300 overflows to inf inside GEOS.
MAX_COORDINATE = 1e9


class GeometryError(InputError):
    """Coordinates no geometry can be built from: not finite, or too large for float64 work."""


def _finite(values: np.ndarray, what: str, shown: object = None) -> None:
    """GeometryError naming the first NaN or inf of ``values`` (``shown``: the value to report)."""
    if not np.isfinite(values).all():
        bad = float(values[~np.isfinite(values)].flat[0])
        raise GeometryError(f"{what} must be finite numbers, not {bad!r}", value=shown)


def check_coordinates(values: object, what: str = "coordinates") -> np.ndarray:
    """``values`` as a float array once all are finite and within ``MAX_COORDINATE``.

    Raises :class:`GeometryError` naming the first bad value, for the caller to reject the one
    object or feature (converters call it before GEOS repairs or clips a source shape).
    """
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise GeometryError(f"{what} must be numbers") from None
    _finite(array, what)
    if array.size and (too_large := np.abs(array) > MAX_COORDINATE).any():
        bad = float(array[too_large].flat[0])
        raise GeometryError(f"{what} must lie within ±{MAX_COORDINATE:,.0f}, not {bad!r}")
    return array


def size_mismatch(
    source: str, declared: tuple[float, float], width: int, height: int
) -> str | None:
    """Why an annotation's own image size rules it out, or None when it agrees with the file.

    Its coordinates are in the pixels of the size it declares: on an image of another size (a
    resized copy, the wrong file) every box would land wrong, so the image is rejected whole.
    """
    if tuple(declared) == (width, height) and not any(isinstance(v, bool) for v in declared):
        return None
    shown = "x".join(_size_text(v) for v in declared)
    return f"the {source} gives {shown} but the image is {width}x{height}"


def _size_text(value: object) -> str:
    """640 and 640.0 as ``640``, anything else as written (``'640'``, ``True``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _as_points(polygon: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """One polygon as a finite (N, 2) float array with N >= 3, or an InputError naming it."""
    points = np.asarray(polygon, dtype=float)
    if points.ndim != 2 or points.shape[0] < 3 or points.shape[1] != 2:
        raise InputError("a polygon needs at least 3 [x, y] points", value=polygon)
    _finite(points, "polygon coordinates", polygon)
    return points


def _as_polygons(polygons: Sequence | np.ndarray) -> np.ndarray:
    """Many polygons (ragged lists, an (N, K, 2) array, or shapely polygons) as shapely polygons."""
    if isinstance(polygons, np.ndarray) and polygons.dtype != object:
        if polygons.ndim != 3 or polygons.shape[1] < 3 or polygons.shape[2] != 2:
            raise InputError("polygons must be an (N, K, 2) array, K >= 3", value=polygons.shape)
        return shapely.polygons(polygons.astype(float))
    if len(polygons) == 0:
        return np.empty(0, dtype=object)
    if isinstance(polygons[0], shapely.Geometry):
        return np.asarray(polygons, dtype=object)
    points = [_as_points(polygon) for polygon in polygons]
    counts = [len(p) for p in points]
    rings = shapely.linearrings(
        np.concatenate(points), indices=np.repeat(np.arange(len(points)), counts)
    )
    return shapely.polygons(rings)


def _made_valid(polygons: np.ndarray) -> np.ndarray:
    """Repair invalid shapes (e.g. a quad with crossed corners) so areas and overlays are sound."""
    invalid = ~shapely.is_valid(polygons)
    if invalid.any():
        polygons = polygons.copy()
        polygons[invalid] = shapely.make_valid(polygons[invalid])
    return polygons


def polygon_bbox(polygon: Sequence[Sequence[float]] | np.ndarray) -> list[float]:
    """Axis-aligned ``[x, y, w, h]`` bounds of a polygon, not clipped to any image."""
    points = _as_points(polygon)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def clip_bbox(bbox: Sequence[float], width: float, height: float) -> list[float] | None:
    """COCO box clipped to the image ``[0, width] x [0, height]``; None if no area remains.

    A non-finite value raises :class:`GeometryError`: inf would clip to the image edge and pass.
    """
    x, y, w, h = (float(v) for v in bbox)
    _finite(np.array([x, y, w, h]), "box coordinates", list(bbox))
    box = _clip_bounds(np.array([[x, y, x + w, y + h]]), width, height)[0]
    return None if np.isnan(box).any() else [float(v) for v in box]


def polygon_to_clipped_bbox(
    polygon: Sequence[Sequence[float]] | np.ndarray, width: float, height: float
) -> list[float] | None:
    """The record's ``bbox``: the polygon's axis-aligned bounds clipped to the image.

    The bounds are clipped, not the shape (the record ``bbox`` in DESIGN.md), so a ship reaching
    x=1112 in a 1111-px image ends at 1111 and keeps its full height. None when no area remains.
    """
    points = _as_points(polygon)
    bounds = np.concatenate([points.min(axis=0), points.max(axis=0)])
    box = _clip_bounds(bounds[np.newaxis], width, height)[0]
    return None if np.isnan(box).any() else [float(v) for v in box]


def polygons_to_clipped_bboxes(
    polygons: Sequence | np.ndarray, width: float, height: float
) -> np.ndarray:
    """Vectorised :func:`polygon_to_clipped_bbox`: an (N, 4) array, NaN rows where none remains.

    An (N, K, 2) array (all polygons with K vertices, e.g. DOTA quads) takes a numpy-only path:
    the bounds of a polygon are the extremes of its vertices, so no geometry needs building.
    """
    array = isinstance(polygons, np.ndarray) and polygons.ndim == 3
    if array and polygons.shape[1] > 0 and polygons.shape[2] == 2:
        # A running min/max over the K vertices: for small K a few element-wise calls, about
        # twice as fast as a reduction over axis 1. NaN and inf vertices show in the bounds.
        points = polygons.astype(float, copy=False)
        low = high = points[:, 0]
        for k in range(1, points.shape[1]):
            low, high = np.minimum(low, points[:, k]), np.maximum(high, points[:, k])
        bounds = np.concatenate([low, high], axis=1)
        _finite(bounds, "polygon coordinates")
        return _clip_bounds(bounds, width, height)
    return _clip_bounds(shapely.bounds(_as_polygons(polygons)).reshape(-1, 4), width, height)


def _clip_bounds(bounds: np.ndarray, width: float, height: float) -> np.ndarray:
    """(N, 4) ``[x0, y0, x1, y1]`` bounds as clipped ``[x, y, w, h]`` rows, NaN where none remain.

    Clipping the bounds rather than ``[x, y, w, h]`` keeps the scalar and vectorised paths equal
    to the last bit (``x + w`` can round a sliver away).
    """
    x0 = np.maximum(bounds[:, 0], 0.0)
    y0 = np.maximum(bounds[:, 1], 0.0)
    x1 = np.minimum(bounds[:, 2], float(width))
    y1 = np.minimum(bounds[:, 3], float(height))
    boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    boxes[(x1 <= x0) | (y1 <= y0)] = np.nan
    return boxes


def _window_box(window: Sequence[float]) -> shapely.Polygon:
    x, y, w, h = (float(v) for v in window)
    return shapely.box(x, y, x + w, y + h)


def _largest_polygon(geometry: shapely.Geometry) -> shapely.Polygon | None:
    """The largest polygonal piece of any geometry (collections nest), or None if it has no area."""
    pieces = [geometry]
    polygons = []
    while pieces:
        piece = pieces.pop()
        if isinstance(piece, shapely.Polygon):
            polygons.append(piece)
        elif isinstance(piece, shapely.MultiPolygon | shapely.GeometryCollection):
            pieces.extend(shapely.get_parts(piece))
    polygons = [p for p in polygons if p.area > 0]
    return max(polygons, key=lambda p: p.area) if polygons else None


def clip_polygon_to_window(
    polygon: Sequence[Sequence[float]] | np.ndarray, window: Sequence[float]
) -> list[list[float]] | None:
    """The part of a polygon inside ``window = [x, y, w, h]``, in the same (unshifted) coordinates.

    Returns the exterior ring without its closing point, oriented like DOTA labels (positive
    shoelace area), holes dropped. An invalid polygon is repaired first; when the clip falls into
    several pieces the largest is kept, since an object label has one outline. None when empty.
    """
    shape = _made_valid(np.array([shapely.Polygon(_as_points(polygon))], dtype=object))[0]
    piece = _largest_polygon(shapely.intersection(shape, _window_box(window)))
    if piece is None:
        return None
    ring = orient(piece, sign=1.0).exterior.coords[:-1]
    return [[float(x), float(y)] for x, y in ring]


def intersection_over_object(
    polygons: Sequence | np.ndarray, window: Sequence[float]
) -> np.ndarray:
    """Vectorised IoF, ``area(poly & window) / area(poly)``, per polygon; 0 for zero-area ones.

    Polygons whose bounds lie inside the window score 1 and those with disjoint bounds score 0
    without an overlay, so only objects that straddle the window edge pay for an intersection.
    """
    shapes = _made_valid(_as_polygons(polygons))
    areas = shapely.area(shapes)
    bounds = shapely.bounds(shapes).reshape(-1, 4)
    wx0, wy0, wx1, wy1 = shapely.bounds(_window_box(window))
    inside = (bounds[:, 0] >= wx0) & (bounds[:, 1] >= wy0) & (bounds[:, 2] <= wx1)
    inside &= bounds[:, 3] <= wy1
    apart = (bounds[:, 0] >= wx1) | (bounds[:, 1] >= wy1) | (bounds[:, 2] <= wx0)
    apart |= bounds[:, 3] <= wy0
    result = np.zeros(len(shapes), dtype=float)
    result[inside] = 1.0
    straddle = ~inside & ~apart & (areas > 0)
    if straddle.any():
        overlap = shapely.area(shapely.intersection(shapes[straddle], _window_box(window)))
        result[straddle] = overlap / areas[straddle]
    result[areas <= 0] = 0.0
    return result


def obb_to_polygon(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    """The 4 x 2 corners of an oriented box, clockwise on screen (see the module docstring)."""
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    frame = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], dtype=float) / 2.0
    rotation = np.array([[cos, sin], [-sin, cos]])
    return frame @ rotation + np.array([cx, cy], dtype=float)


def _wrap(angle: float, period: float) -> float:
    """Angle folded into [-period/2, period/2)."""
    wrapped = (angle + period / 2.0) % period - period / 2.0
    return wrapped - period if wrapped >= period / 2.0 else wrapped


def polygon_to_obb(
    polygon: Sequence[Sequence[float]] | np.ndarray,
) -> tuple[float, float, float, float, float]:
    """``(cx, cy, w, h, angle)`` of the minimum-area rotated rectangle, in the le90 form.

    The rectangle has a side on a convex-hull edge, so every hull edge is tried in numpy on the
    source coordinates: GEOS's ``oriented_envelope`` drifts ~1e-9 px at y=4000, enough to flip which
    side of a square counts as ``w``. A degenerate polygon gives a segment (``h == 0``) or a point.
    """
    points = _as_points(polygon)
    origin = points.mean(axis=0)
    hull = shapely.get_coordinates(shapely.convex_hull(shapely.multipoints(points - origin)))
    edges = np.diff(hull, axis=0)
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    if not (lengths > 0).any():
        return float(points[0, 0]), float(points[0, 1]), 0.0, 0.0, 0.0
    along = edges[lengths > 0] / lengths[lengths > 0, np.newaxis]
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    spans_along, spans_across = hull @ along.T, hull @ across.T
    extents = np.ptp(spans_along, axis=0), np.ptp(spans_across, axis=0)
    best = int(np.argmin(extents[0] * extents[1]))
    middle = (spans_along[:, best].min() + spans_along[:, best].max()) / 2.0
    middle_across = (spans_across[:, best].min() + spans_across[:, best].max()) / 2.0
    cx, cy = origin + middle * along[best] + middle_across * across[best]
    w, h, side = float(extents[0][best]), float(extents[1][best]), along[best]
    if w < h:
        w, h, side = h, w, across[best]
    square = math.isclose(w, h, rel_tol=_SQUARE_TOL, abs_tol=_SQUARE_TOL)
    angle = _wrap(math.degrees(math.atan2(side[1], side[0])), 90.0 if square else 180.0)
    return float(cx), float(cy), w, h, angle


def box_fill(polygon: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Share of its own axis-aligned bounds an outline covers (0 for a line).

    1 for an upright rectangle, 0.5 for a diamond, about 0.05 for a 150 x 4 m pier lying at
    45°: its box then shows mostly other things, so a question "what is in this box?" is not
    about the pier.
    """
    points = _as_points(polygon)
    shape = shapely.Polygon(points)
    if not shape.is_valid:
        shape = shapely.make_valid(shape)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    bounds_area = float((x1 - x0) * (y1 - y0))
    return float(shape.area) / bounds_area if bounds_area > 0 else 0.0


def iou_matrix(boxes: Sequence[Sequence[float]], others: Sequence[Sequence[float]]) -> np.ndarray:
    """IoU of every COCO ``[x, y, w, h]`` box (rows) with every other (columns): pycocotools'
    ``mask.iou``, the definition COCO evaluation uses. Empty inputs give an empty matrix."""
    if not len(boxes) or not len(others):
        return np.zeros((len(boxes), len(others)))
    from pycocotools import mask as coco_mask

    rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    columns = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    ious = coco_mask.iou(rows, columns, [0] * len(columns))
    return np.asarray(ious, dtype=np.float64).reshape(len(rows), len(columns))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two COCO ``[x, y, w, h]`` boxes: :func:`iou_matrix`'s definition for one pair,
    written out (a tenth of its cost, for checks that compare one region at a time; the two are
    tested equal)."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)
