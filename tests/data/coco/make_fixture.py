"""Write a toy COCO instance dataset in the default layout, with the format's variety.

Run ``python tests/data/coco/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``annotations/instances_train.json`` + ``train/``: categories with non-alphabetical ids and
  mixed-case names (plus ``supercategory``), images with ids that do not start at 1, extra image
  keys (``license``, ``date_captured``), an image in a sub-folder, an image without
  annotations, a one-part polygon, a two-part polygon, an ``iscrowd`` RLE region, and extra
  annotation keys (``difficult``, CVAT-style ``attributes``). Every box lies inside its image,
  so this file survives COCO → records → COCO unchanged but for ids.
- ``annotations/instances_val.json`` + ``val/``: a box-only annotation, a box past the image
  edge, and malformed entries (a box of three numbers, an unknown ``category_id``, an odd-length
  polygon, an annotation of an unlisted image).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = [
    {"id": 5, "name": "Small_Vehicle", "supercategory": "vehicle"},
    {"id": 2, "name": "ship", "supercategory": "vessel"},
    {"id": 9, "name": "storage tank", "supercategory": "facility"},
]


def _png(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _image(image_id: int, name: str, width: int, height: int) -> dict:
    return {
        "license": 1,
        "file_name": name,
        "height": height,
        "width": width,
        "date_captured": "2019-08-23 11:47:51",
        "id": image_id,
    }


def _write(path: Path, images: list, annotations: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "info": {"description": "toy COCO fixture", "year": 2024},
        "licenses": [{"id": 1, "name": "CC BY 4.0"}],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    path.write_text(json.dumps(data), encoding="utf-8")  # one line, like real COCO files


def make_train(root: Path) -> None:
    _png(root / "train" / "a.png", 64, 48, seed=1)
    _png(root / "train" / "sub" / "b.png", 32, 32, seed=2)
    _png(root / "train" / "c.png", 40, 40, seed=3)
    annotations = [
        {
            "id": 101,
            "image_id": 7,
            "category_id": 5,
            "segmentation": [[10, 5, 20, 5, 20, 11, 10, 11]],
            "area": 60.0,
            "bbox": [10, 5, 10, 6],
            "iscrowd": 0,
        },
        {
            "id": 102,
            "image_id": 7,
            "category_id": 2,
            "segmentation": [[30, 10, 34, 10, 34, 14], [40, 20, 60, 20, 60, 40, 40, 40]],
            "area": 408.0,
            "bbox": [30, 10, 30, 30],
            "iscrowd": 0,
            "difficult": 1,
            "attributes": {"occluded": False},
        },
        {
            "id": 103,
            "image_id": 7,
            "category_id": 5,
            "segmentation": {"counts": [500, 12, 52, 12, 2496], "size": [48, 64]},
            "area": 24.0,
            "bbox": [7, 20, 2, 12],
            "iscrowd": 1,
        },
        {
            "id": 104,
            "image_id": 3,
            "category_id": 9,
            "segmentation": [[4.5, 4.5, 20.5, 4.5, 20.5, 20.5, 4.5, 20.5]],
            "area": 256.0,
            "bbox": [4.5, 4.5, 16.0, 16.0],
            "iscrowd": 0,
        },
    ]
    images = [
        _image(7, "a.png", 64, 48),
        _image(3, "sub/b.png", 32, 32),
        _image(12, "c.png", 40, 40),
    ]
    _write(root / "annotations" / "instances_train.json", images, annotations)


def make_val(root: Path) -> None:
    _png(root / "val" / "d.png", 32, 32, seed=4)
    box = {"image_id": 1, "category_id": 2, "iscrowd": 0}
    annotations = [
        {**box, "id": 1, "bbox": [2, 2, 10, 8], "area": 80},  # no segmentation
        {**box, "id": 2, "bbox": [20, 24, 20, 4], "segmentation": []},  # past x=32
        {**box, "id": 3, "bbox": [1, 2, 3]},  # three numbers
        {**box, "id": 4, "bbox": [1, 1, 4, 4], "category_id": 7},  # no such category
        {**box, "id": 5, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1, 5]]},  # odd length
        {**box, "id": 6, "bbox": [1, 1, 4, 4], "image_id": 99},  # no such image
    ]
    _write(root / "annotations" / "instances_val.json", [_image(1, "d.png", 32, 32)], annotations)


def make_fixture(root: Path) -> Path:
    """Write the dataset under root and return it."""
    root = Path(root)
    make_train(root)
    make_val(root)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "coco-fixture")))
