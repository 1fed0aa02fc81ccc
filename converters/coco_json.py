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

Ids are matched exactly: an ``image_id`` must be an integer (or a string, where the images' ids
are strings). ``true`` and ``1.0`` are refused rather than read as image 1, since Python would
silently equate them (a float id is never meant; a list or dict is not an id at all).

An image's objects must all reach its record, so images that cannot be told apart are refused
together, each group with one problem naming every image: entries that share a ``file_name``
(or a name up to the suffix, ``a.png``/``a.jpg``: they would share a record id), and entries
that share an ``id`` but differ (whose annotations would be assigned by guess). Keeping one of
them would give a record with part of the objects and false "there is no X" answers. A repeated
identical entry is only a repeat: it is rejected and the first kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import shapely

from rsgpt4v.errors import InputError
from rsgpt4v.geometry import GeometryError, check_coordinates, clip_bbox, polygon_bbox
from rsgpt4v.jsonfiles import load_json
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
    data = load_json(path, what="COCO annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError("not a COCO file: expected an object with an 'images' list", file=path)
    coco = CocoFile(path)
    for index, image in enumerate(data["images"]):
        try:
            coco.images.append((index, _checked_image(image, index)))
        except InputError as error:
            reject(error)
    image_ids = {image["id"] for _, image in coco.images}
    if "annotations" not in data:
        _drop_ambiguous_images(coco, reject)
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
        entry = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            reject(InputError("an annotation must be an object", entry=entry, value=annotation))
            continue
        image_id = annotation.get("image_id")
        if not _is_id(image_id):
            reject(
                InputError(
                    "image_id must be an integer id (true or 1.0 is not read as 1)",
                    entry=f"{entry}.image_id",
                    value=image_id,
                )
            )
        elif image_id not in image_ids:
            reject(
                InputError(
                    "annotation of no listed image", entry=f"{entry}.image_id", value=image_id
                )
            )
        else:
            coco.annotations.setdefault(image_id, []).append((index, annotation))
    _drop_ambiguous_images(coco, reject)
    return coco


def _drop_ambiguous_images(coco: CocoFile, reject: Callable[[InputError], None]) -> None:
    """Refuse, all together, the images whose objects could land on the wrong record."""
    by_id: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, image in coco.images:
        by_id[image["id"]].append((index, image))
    kept: list[tuple[int, dict[str, Any]]] = []
    for group in by_id.values():
        first = group[0][1]
        distinct = [group[0]]
        for index, image in group[1:]:
            if image != first:
                distinct.append((index, image))
            else:  # the same entry twice: the first stands for both
                entry = f"images[{index}].id"
                reject(InputError("duplicate image id", entry=entry, value=image["id"]))
        if len(distinct) > 1:
            _refuse(coco, distinct, f"share id {first['id']!r} but differ", "id", reject)
        else:
            kept.append(group[0])
    by_name: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, image in sorted(kept, key=lambda pair: pair[0]):
        by_name[PurePosixPath(image["file_name"]).with_suffix("").as_posix()].append((index, image))
    coco.images = []
    for group in by_name.values():
        if len(group) == 1:
            coco.images.append(group[0])
            continue
        names = {PurePosixPath(image["file_name"]).as_posix() for _, image in group}
        what = "name the same file" if len(names) == 1 else "differ only in suffix (one record id)"
        _refuse(coco, group, what, "file_name", reject)
    coco.images.sort(key=lambda pair: pair[0])


def _refuse(
    coco: CocoFile,
    group: list[tuple[int, dict[str, Any]]],
    why: str,
    key: str,
    reject: Callable[[InputError], None],
) -> None:
    """One problem for images that cannot be told apart; their annotations go with them."""
    named = key != "id"  # the ids tell a user which annotations went with them
    listed = ", ".join(f"images[{i}]" + (f" (id {im['id']!r})" if named else "") for i, im in group)
    lost = 0
    if coco.annotations is not None:
        lost = sum(len(coco.annotations.pop(image["id"], [])) for _, image in group)
    reason = f"{listed} {why}: ambiguous, so none of them is converted"
    if lost:
        reason += f" ({lost} annotations with them)"
    index, image = group[1]
    reject(InputError(reason, entry=f"images[{index}].{key}", value=image[key]))


def _checked_image(image: object, index: int) -> dict[str, Any]:
    entry = f"images[{index}]"
    if not isinstance(image, dict) or not _is_id(image.get("id")):
        raise InputError("an image needs an id", entry=entry, value=image)
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
    _sane(box, "bbox", f"{entry}.bbox")
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


def _sane(values: list[float], what: str, entry: str) -> None:
    """Finite numbers GEOS can work with (1e300 would overflow in areas and overlays)."""
    try:
        check_coordinates(values, what)
    except GeometryError as error:
        raise InputError(error.reason, entry=entry, value=values) from None


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
        _sane(part, "polygon coordinates", f"{entry}[{number}]")
        if len(part) >= 6:
            parts.append([[float(x), float(y)] for x, y in zip(part[::2], part[1::2], strict=True)])
    if not parts:
        return None, True
    polygon = max(parts, key=lambda p: shapely.Polygon(p).area) if len(parts) > 1 else parts[0]
    return polygon, len(value) > 1
