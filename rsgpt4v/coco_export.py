"""Records → a COCO instances JSON that ``pycocotools.coco.COCO`` loads (``rsgpt4v coco``).

For evaluation and for tools that read COCO (detectors, viewers, pycocotools' evaluation).
Two streaming passes over the records file: the first writes the images and collects the class
names, the second writes the annotations, so no dataset is held in memory.

What becomes what:

- ``categories``: one per class name, ids 1..K in **sorted name order**, so the same classes
  get the same ids whatever the order of the records (train and val exports agree).
- ``images``: one per labelled record, ids 1..N in file order; ``file_name`` is the record's
  ``image.path`` (relative to the convert ROOT, i.e. use that ROOT as the image folder),
  ``width``, ``height``, and the keys of ``meta.coco`` (extra image keys of a COCO source).
  Unlabelled records (``meta.labelled: false``) are left out: in COCO an image without
  annotations means "no objects".
- ``annotations``: ids 1..M; ``bbox`` is the record box. ``segmentation`` and ``area`` are the
  source's (``attributes.segmentation``, the parts or RLE of a COCO source, and
  ``attributes.area``) while they still describe the object: not on a tile (``image.parent``
  set) and, with several parts, the object's polygon still one of them. Otherwise they are
  computed: the polygon (or the box rectangle when the polygon is null), and the polygon's area
  inside the image (shapely) or the box area. ``iscrowd`` is ``attributes.iscrowd`` or 0.
  Every other attribute is written as a key of its own, and ``difficult: true`` is added for
  difficult objects that do not carry the key already.

With these rules COCO → records (``convert coco``) → COCO gives back the source's images and
annotations, up to: new ids; ``file_name`` prefixed with the image folder relative to ROOT;
boxes clipped to the image; ``info``, ``licenses``, ``supercategory`` and ``category_name``
not kept; a box rectangle as the segmentation of annotations that had none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import shapely

from rsgpt4v.atomic import atomic_text
from rsgpt4v.schema import Object, Record, read_jsonl

CORE_KEYS = ("id", "image_id", "category_id", "bbox", "segmentation", "area", "iscrowd")


@dataclass
class CocoSummary:
    output: Path
    images: int = 0
    annotations: int = 0
    categories: list[str] = field(default_factory=list)
    unlabelled: int = 0


def _flat(polygon: list[list[float]]) -> list[float]:
    return [v for point in polygon for v in point]


def _rectangle(bbox: list[float]) -> list[float]:
    x, y, w, h = bbox
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def object_annotation(obj: Object, record: Record) -> dict[str, Any]:
    """The COCO annotation of one object, without ids (see the module docstring)."""
    source = obj.attributes.get("segmentation")
    unchanged = record.image.parent is None and (
        source is None
        or obj.polygon is None
        or (isinstance(source, list) and _flat(obj.polygon) in source)
    )
    if unchanged and source is not None:
        segmentation = source
    elif obj.polygon is not None:
        segmentation = [_flat(obj.polygon)]
    else:
        segmentation = [_rectangle(obj.bbox)]
    if unchanged and "area" in obj.attributes:
        area = obj.attributes["area"]
    elif obj.polygon is not None:
        image = shapely.box(0, 0, record.image.width, record.image.height)
        area = shapely.make_valid(shapely.Polygon(obj.polygon)).intersection(image).area
    else:
        area = obj.bbox[2] * obj.bbox[3]
    extras = {k: v for k, v in obj.attributes.items() if k not in CORE_KEYS}
    if obj.difficult and "difficult" not in extras:
        extras["difficult"] = True
    return {
        **extras,
        "bbox": obj.bbox,
        "segmentation": segmentation,
        "area": float(area),
        "iscrowd": int(bool(obj.attributes.get("iscrowd", 0))),
    }


def records_to_coco(records_path: str | Path, output: str | Path) -> CocoSummary:
    """Write the records file as a COCO instances JSON; return what was written."""
    output = Path(output)
    summary = CocoSummary(output=output)
    with atomic_text(output) as handle:  # a new staged file: nothing at a fixed name is followed
        names = _write_images(records_path, handle, summary)
        summary.categories = sorted(names)
        category_ids = {name: i for i, name in enumerate(summary.categories, start=1)}
        categories = [{"id": i, "name": name} for name, i in category_ids.items()]
        handle.write('],\n"categories": ' + json.dumps(categories) + ',\n"annotations": [')
        _write_annotations(records_path, handle, category_ids, summary)
        handle.write("\n]}\n")
    return summary


def _labelled(records_path: str | Path) -> Iterator[Record]:
    return (r for r in read_jsonl(records_path, Record) if r.labelled)


def _write_images(records_path: str | Path, handle: TextIO, summary: CocoSummary) -> set[str]:
    handle.write('{"images": [')
    names: set[str] = set()
    for record in read_jsonl(records_path, Record):
        if not record.labelled:
            summary.unlabelled += 1
            continue
        summary.images += 1  # the same numbering as _labelled() in the second pass
        image = {
            **record.meta.get("coco", {}),
            "id": summary.images,
            "file_name": record.image.path,
            "width": record.image.width,
            "height": record.image.height,
        }
        handle.write(("\n" if summary.images == 1 else ",\n") + json.dumps(image))
        names.update(obj.category for obj in record.objects)
    return names


def _write_annotations(
    records_path: str | Path, handle: TextIO, category_ids: dict[str, int], summary: CocoSummary
) -> None:
    for image_id, record in enumerate(_labelled(records_path), start=1):
        for obj in record.objects:
            summary.annotations += 1
            annotation = {
                "id": summary.annotations,
                "image_id": image_id,
                "category_id": category_ids[obj.category],
                **object_annotation(obj, record),
            }
            handle.write(("\n" if summary.annotations == 1 else ",\n") + json.dumps(annotation))
