"""Reading COCO instance JSON (``images``, ``annotations``, ``categories``) into record parts.

Shared by the ``coco`` and ``isaid`` converters. Problems are :class:`InputError` s whose
``entry`` is the JSON path of the bad item (``annotations[12].bbox``); the converter turns them
into rejects, so ``--skip-bad`` works per entry.

What becomes what (and what comes back from :mod:`rsgpt4v.coco_export`):

- ``category_id`` is looked up in the file's own ``categories`` and only the **name** is kept:
  ids differ between distributions of one dataset (iSAID's devkit and official files), names
  do not. An annotation's ``category_name`` (iSAID) must agree with that name.
- ``bbox`` (COCO ``[x, y, w, h]``) is clipped to the image; without one, the polygon bounds.
- A polygon ``segmentation`` becomes ``polygon``; with several parts the largest one, and the
  full list is kept in ``attributes.segmentation``. An RLE segmentation (a dict, used for
  ``iscrowd`` 1 crowd regions) is not an outline: the object keeps its box, ``polygon`` null,
  and the RLE and ``iscrowd: 1`` in ``attributes``. Crowd regions are kept rather than
  rejected because they are labels (evaluation needs them as ignore regions) and a COCO file
  made from the records must not lose them; ``meta.crowd_regions`` counts them, since a crowd
  is many objects under one box.
- ``area`` and every other annotation key (``difficult``, ``attributes``, …) go to ``attributes``
  verbatim; ``difficult`` also sets the object's flag. ``id``/``image_id`` are not kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import shapely

from rsgpt4v.errors import InputError
from rsgpt4v.geometry import clip_bbox, polygon_bbox
from rsgpt4v.schema import Object

ANNOTATION_CORE = ("id", "image_id", "category_id", "category_name", "bbox", "segmentation")
IMAGE_CORE = ("id", "file_name", "width", "height")


@dataclass
class CocoFile:
    """A COCO JSON, indexed; ``annotations`` is None for an image-info file (no labels)."""

    path: Path
    images: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    categories: dict[Any, str] = field(default_factory=dict)
    annotations: dict[Any, list[tuple[int, dict[str, Any]]]] | None = None


def _is_id(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_coco(path: Path, reject: Callable[[InputError], None]) -> CocoFile:
    """Load and index a COCO file; ``reject(error)`` is called for every bad entry."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InputError("COCO annotation file not found", file=path) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error.msg})", file=path, line=error.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError("not a COCO file: expected an object with an 'images' list", file=path)
    coco = CocoFile(path)
    image_ids: set[Any] = set()
    for index, image in enumerate(data["images"]):
        try:
            coco.images.append((index, _checked_image(image, index, image_ids)))
        except InputError as error:
            reject(error)
    if "annotations" not in data:
        return coco
    for index, category in enumerate(data.get("categories") or []):
        entry = f"categories[{index}]"
        if not isinstance(category, dict) or not _is_id(category.get("id")):
            reject(InputError("a category needs an id", entry=entry, value=category))
        elif not isinstance(category.get("name"), str) or not category["name"]:
            reject(InputError("a category needs a name", entry=f"{entry}.name", value=category))
        elif category["id"] in coco.categories:
            reject(InputError("duplicate category id", entry=f"{entry}.id", value=category["id"]))
        else:
            coco.categories[category["id"]] = category["name"]
    coco.annotations = {}
    if not isinstance(data["annotations"], list):
        raise InputError("'annotations' must be a list", file=path)
    for index, annotation in enumerate(data["annotations"]):
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if image_id not in image_ids:
            entry = f"annotations[{index}]" + (".image_id" if isinstance(annotation, dict) else "")
            reject(InputError("annotation of no listed image", entry=entry, value=image_id))
            continue
        coco.annotations.setdefault(image_id, []).append((index, annotation))
    return coco


def _checked_image(image: object, index: int, seen: set[Any]) -> dict[str, Any]:
    entry = f"images[{index}]"
    if not isinstance(image, dict) or not _is_id(image.get("id")):
        raise InputError("an image needs an id", entry=entry, value=image)
    if image["id"] in seen:
        raise InputError("duplicate image id", entry=f"{entry}.id", value=image["id"])
    name = image.get("file_name")
    if not isinstance(name, str) or not name or "\\" in name:
        raise InputError(
            "file_name must be a relative path", entry=f"{entry}.file_name", value=name
        )
    parts = PurePosixPath(name)
    if parts.is_absolute() or ".." in parts.parts:
        raise InputError(
            "file_name escapes the image folder", entry=f"{entry}.file_name", value=name
        )
    seen.add(image["id"])
    return image


def image_extras(image: dict[str, Any]) -> dict[str, Any]:
    """The image entry's keys beyond id, file_name, width and height (e.g. iSAID mask names)."""
    return {key: value for key, value in image.items() if key not in IMAGE_CORE}


def annotation_to_object(
    annotation: object,
    index: int,
    categories: dict[Any, str],
    width: int,
    height: int,
    object_id: int,
) -> Object:
    """One annotation as a record object; InputError (entry = JSON path) when unusable."""
    entry = f"annotations[{index}]"
    if not isinstance(annotation, dict):
        raise InputError("an annotation must be an object", entry=entry, value=annotation)
    category_id = annotation.get("category_id")
    if not _is_id(category_id) or category_id not in categories:
        raise InputError(
            "category_id is not in categories", entry=f"{entry}.category_id", value=category_id
        )
    category = categories[category_id]
    if annotation.get("category_name", category) != category:
        raise InputError(
            f"category_name disagrees with category {category_id} ({category!r})",
            entry=f"{entry}.category_name",
            value=annotation["category_name"],
        )
    attributes = {k: v for k, v in annotation.items() if k not in ANNOTATION_CORE}
    if attributes.get("iscrowd", 0) not in (0, 1):
        raise InputError(
            "iscrowd must be 0 or 1", entry=f"{entry}.iscrowd", value=attributes["iscrowd"]
        )
    if "area" in attributes and not _number(attributes["area"]):
        raise InputError("area must be a number", entry=f"{entry}.area", value=attributes["area"])
    if not attributes.get("iscrowd"):
        attributes.pop("iscrowd", None)  # 0 is the default; the exporter writes it back
    polygon, keep = _segmentation(annotation.get("segmentation"), f"{entry}.segmentation")
    if keep:
        attributes["segmentation"] = annotation["segmentation"]
    box = annotation.get("bbox")
    if box is None and polygon is not None:
        box = polygon_bbox(polygon)
    if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
        raise InputError("bbox must be [x, y, w, h] numbers", entry=f"{entry}.bbox", value=box)
    bbox = clip_bbox(box, width, height)
    if bbox is None:
        raise InputError(
            f"bbox lies outside the {width}x{height} image or has no area",
            entry=f"{entry}.bbox",
            value=box,
        )
    return Object(
        id=object_id,
        category=category,
        bbox=bbox,
        polygon=polygon,
        difficult=bool(annotation.get("difficult", False)),
        attributes=attributes,
    )


def _segmentation(value: object, entry: str) -> tuple[list[list[float]] | None, bool]:
    """(polygon, keep the source segmentation in attributes) for any COCO segmentation."""
    if value is None or value == []:
        return None, False
    if isinstance(value, dict):
        return None, True  # RLE: no outline to keep as a polygon
    if not isinstance(value, list):
        raise InputError("segmentation must be polygons or RLE", entry=entry, value=value)
    parts = []
    for number, part in enumerate(value):
        if not (isinstance(part, list) and len(part) % 2 == 0 and all(_number(v) for v in part)):
            raise InputError(
                "a polygon must be a flat list [x1, y1, x2, y2, ...]",
                entry=f"{entry}[{number}]",
                value=part,
            )
        if len(part) >= 6:
            parts.append([[float(x), float(y)] for x, y in zip(part[::2], part[1::2], strict=True)])
    if not parts:
        return None, True
    polygon = max(parts, key=lambda p: shapely.Polygon(p).area) if len(parts) > 1 else parts[0]
    return polygon, len(value) > 1
