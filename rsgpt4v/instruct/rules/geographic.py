"""Geographic questions for georeferenced records: where an object is, which way, how large.

Every number follows from the record: pixel → map coordinates through ``image.transform``
(GDAL order), map → WGS 84 latitude/longitude through pyproj, directions as true bearings
between two objects' centres, areas from the object's outline times the ground area of one
pixel. A record without CRS and transform, or with a CRS pyproj cannot read, gets none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pyproj import Geod, Transformer

from rsgpt4v.geometry import box_iou
from rsgpt4v.gsd import ground_sample_distance, lonlat_transformer
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Object, Record
from rsgpt4v.vocabulary import category_name

MAX_LOCATIONS = 2  # latitude/longitude questions per image
MAX_AREAS = 2  # area questions per image
MAX_DIRECTIONS = 2  # direction questions per image
DIRECTION_TRIES = 4  # random pairs tried per direction question asked
DIRECTION_MARGIN_DEG = 5.0  # bearings this close to a sector boundary are not asked about
DIRECTIONS = (
    "north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west",
)  # fmt: skip
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class GeoFrame:
    """How one image's pixels map to the ground."""

    transform: tuple[float, ...]
    to_lonlat: Transformer
    pixel_area_m2: float | None  # the GSD squared; None without one (rsgpt4v.gsd)

    @property
    def north_up(self) -> bool:
        """No rotation or shear, x east and y south: "up" in the image is north."""
        t = self.transform
        return t[2] == 0 and t[4] == 0 and t[1] > 0 and t[5] < 0

    def lonlat(self, x: float, y: float) -> tuple[float, float] | None:
        """WGS 84 longitude and latitude of pixel position (x, y); None if off the globe."""
        t = self.transform
        lon, lat = self.to_lonlat.transform(t[0] + x * t[1] + y * t[2], t[3] + x * t[4] + y * t[5])
        if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90 or abs(lon) > 180:
            return None
        return lon, lat


def geo_frame(record: Record) -> GeoFrame | None:
    """The record's frame, or None when it is not georeferenced (or its CRS is unreadable)."""
    image = record.image
    if not image.crs or not image.transform:
        return None
    to_lonlat = lonlat_transformer(image.crs)
    if to_lonlat is None:
        return None
    t = tuple(image.transform)
    gsd = image.gsd or ground_sample_distance(image.crs, t, image.width, image.height)
    return GeoFrame(t, to_lonlat, gsd**2 if gsd else None)


def geographic(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Location, area and direction questions about objects wholly inside the image.

    Answer wordings come from their own stream (``TaskRandom.spawn``): the main one goes on to
    sample the objects and pairs asked about.
    """
    if not record.labelled or not record.objects:
        return
    wording = rng.spawn("answers")
    frame = geo_frame(record)
    if frame is None:
        return
    inside = [o for o in record.objects if wholly_inside(o, record)]
    pool = load_pool("geographic")
    index = 0
    for obj in _sample(inside, MAX_LOCATIONS, rng):
        position = frame.lonlat(*box_centre(obj))
        if position is None:
            continue
        lon, lat = position
        words = _words(obj) | {"lat": format_latitude(lat), "lon": format_longitude(lon)}
        turns = [
            (
                fill_template(rng.choice(pool.questions), words),
                fill_template(pick(pool.answers, "location", wording), words),
            )
        ]
        yield Draft("geographic", index, pool.template, turns, [obj])
        index += 1
    if frame.pixel_area_m2 is not None:
        phrasings = load_questions("geographic", "area_questions")
        for obj in _sample(inside, MAX_AREAS, rng):
            area = object_area_px(obj) * frame.pixel_area_m2
            words = _words(obj) | {"area": f"{area:.1f}"}
            turns = [
                (
                    fill_template(rng.choice(phrasings), words),
                    fill_template(pick(pool.answers, "area", wording), words),
                )
            ]
            yield Draft("geographic", index, pool.template, turns, [obj])
            index += 1
    if frame.north_up and len(inside) >= 2:
        phrasings = load_questions("geographic", "direction_questions")
        for obj, other, direction in _direction_pairs(inside, frame, rng):
            words = {f"{k}_b": v for k, v in _words(other).items()} | _words(obj)
            words["direction"] = direction
            question = fill_template(rng.choice(phrasings), words)
            turns = [(question, fill_template(pick(pool.answers, "direction", wording), words))]
            yield Draft("geographic", index, pool.template, turns, [obj, other])
            index += 1


def _words(obj: Object) -> dict[str, str]:
    return {"ref": f"<ref:{obj.id}>", "singular": category_name(obj.category).singular}


def _sample(objects: Sequence[Object], limit: int, rng: TaskRandom) -> list[Object]:
    """Up to ``limit`` objects in record order, chosen by the rule's rng when there are more."""
    if len(objects) <= limit:
        return list(objects)
    return [objects[i] for i in sorted(rng.sample(range(len(objects)), limit))]


def _direction_pairs(
    objects: Sequence[Object], frame: GeoFrame, rng: TaskRandom
) -> Iterator[tuple[Object, Object, str]]:
    """Random (object, reference, direction) triples with a clear answer, MAX_DIRECTIONS at most.

    A pair is clear when the boxes do not overlap and the bearing is not within
    DIRECTION_MARGIN_DEG of a boundary between two of the eight directions.
    """
    found: set[tuple[int, int]] = set()
    for _ in range(MAX_DIRECTIONS * DIRECTION_TRIES):
        obj, other = rng.sample(objects, 2)
        if (obj.id, other.id) in found or box_iou(obj.bbox, other.bbox) > 0:
            continue
        degrees = bearing(frame, other, obj)
        direction = cardinal_direction(degrees) if degrees is not None else None
        if direction is not None:
            found.add((obj.id, other.id))
            yield obj, other, direction
            if len(found) == MAX_DIRECTIONS:
                return


def bearing(frame: GeoFrame, origin: Object, target: Object) -> float | None:
    """True bearing (degrees clockwise from north) from one object's centre to another's."""
    start, end = frame.lonlat(*box_centre(origin)), frame.lonlat(*box_centre(target))
    if start is None or end is None:
        return None
    azimuth, _, _ = _GEOD.inv(*start, *end)
    return azimuth % 360.0


def cardinal_direction(degrees: float) -> str | None:
    """One of the eight directions, or None when the bearing sits near a sector boundary."""
    sector = round(degrees / 45.0) % len(DIRECTIONS)
    offset = abs((degrees - sector * 45.0 + 180.0) % 360.0 - 180.0)
    return DIRECTIONS[sector] if offset <= 22.5 - DIRECTION_MARGIN_DEG else None


def box_centre(obj: Object) -> tuple[float, float]:
    x, y, w, h = obj.bbox
    return x + w / 2, y + h / 2


def object_area_px(obj: Object) -> float:
    """Area of the object's outline (its polygon, else its box) in square pixels.

    The polygon's area is shapely's, computed as GEOS does (the shoelace sum taken relative to
    the first corner, in GEOS's order of operations, so equal to the last bit): making a shapely
    polygon per object costs far more than the sum over its few corners.
    """
    points = obj.polygon
    if points is None:
        return obj.bbox[2] * obj.bbox[3]
    ring = [*points, points[0]]
    x0 = ring[0][0]
    total = 0.0
    for i in range(1, len(ring) - 1):
        total += (ring[i][0] - x0) * (ring[i - 1][1] - ring[i + 1][1])
    return abs(total / 2.0)


def wholly_inside(obj: Object, record: Record) -> bool:
    """Whether the box stays clear of the image border (a cut object has no true centre)."""
    x, y, w, h = obj.bbox
    return x > 0 and y > 0 and x + w < record.image.width and y + h < record.image.height


def format_latitude(lat: float) -> str:
    return f"{abs(lat):.6f}° {'N' if lat >= 0 else 'S'}"


def format_longitude(lon: float) -> str:
    return f"{abs(lon):.6f}° {'E' if lon >= 0 else 'W'}"


TASKS = {"geographic": geographic}
