"""Write a toy iSAID tree: the raw release layout and the devkit's patch layout.

Run ``python tests/data/isaid/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``OUT/iSAID/train``: ``images/P0002.png`` with its ``_instance_color_RGB``/``_instance_id_RGB``
  masks beside it, ``Annotations/iSAID_train.json`` with the **official** category ids
  (1 storage_tank, 2 Large_Vehicle, 3 Small_Vehicle, 4 plane, 5 ship, …), mixed-case names,
  ``category_name`` on every annotation, polygons as ``cv2.findContours`` writes them (integer
  lists), and ``P0003`` without instances.
- ``OUT/iSAID/val``: ``iSAID_val.json`` beside ``images/``, with the **devkit** ids (1 ship,
  2 storage_tank, …), one odd-length polygon and one ``category_name`` that disagrees with its
  id.
- ``OUT/iSAID/test/images``: images only.
- ``OUT/iSAID_patches/train``: devkit patches ``P0002_0_32_0_32.png`` (y first), ids from 0,
  ``ins_file_name``/``seg_file_name`` image keys, ``instancesonly_filtered_train.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

OFFICIAL_IDS = [
    "storage_tank",
    "Large_Vehicle",
    "Small_Vehicle",
    "plane",
    "ship",
    "Swimming_pool",
    "Harbor",
    "tennis_court",
    "Ground_Track_Field",
    "Soccer_ball_field",
    "baseball_diamond",
    "Bridge",
    "basketball_court",
    "Roundabout",
    "Helicopter",
]
DEVKIT_IDS = [
    "ship",
    "storage_tank",
    "baseball_diamond",
    "tennis_court",
    "basketball_court",
    "Ground_Track_Field",
    "Bridge",
    "Large_Vehicle",
    "Small_Vehicle",
    "Helicopter",
    "Swimming_pool",
    "Roundabout",
    "Soccer_ball_field",
    "plane",
    "Harbor",
]


def _png(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _categories(names: list[str]) -> list[dict]:
    return [{"id": i, "name": name} for i, name in enumerate(names, start=1)]


def _instance(ann_id: int, image_id: int, names: list[str], name: str, polygon: list) -> dict:
    xs, ys = polygon[::2], polygon[1::2]
    return {
        "id": ann_id,
        "image_id": image_id,
        "segmentation": [polygon],
        "category_id": names.index(name) + 1,
        "category_name": name,
        "iscrowd": 0,
        "area": float((max(xs) - min(xs)) * (max(ys) - min(ys))),
        "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
    }


def _write(path: Path, images: list, annotations: list, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"images": images, "categories": _categories(names), "annotations": annotations}
    path.write_text(json.dumps(data), encoding="utf-8")


def make_raw(root: Path) -> None:
    train = root / "iSAID" / "train"
    _png(train / "images" / "P0002.png", 64, 48, seed=1)
    _png(train / "images" / "P0002_instance_color_RGB.png", 64, 48, seed=2)
    _png(train / "images" / "P0002_instance_id_RGB.png", 64, 48, seed=3)
    _png(train / "images" / "P0003.png", 32, 32, seed=4)
    names = OFFICIAL_IDS
    _write(
        train / "Annotations" / "iSAID_train.json",
        [
            {"id": 1, "file_name": "P0002.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "P0003.png", "width": 32, "height": 32},
        ],
        [
            _instance(1, 1, names, "Small_Vehicle", [10, 5, 19, 5, 19, 10, 10, 10]),
            _instance(2, 1, names, "plane", [30, 10, 50, 12, 48, 30, 28, 28]),
            _instance(3, 1, names, "storage_tank", [2, 40, 8, 40, 8, 46, 2, 46]),
        ],
        names,
    )
    val = root / "iSAID" / "val"
    _png(val / "images" / "P0004.png", 32, 32, seed=5)
    names = DEVKIT_IDS
    bad_polygon = _instance(3, 1, names, "ship", [4, 4, 12, 4, 12])
    wrong_name = {**_instance(4, 1, names, "Harbor", [1, 1, 5, 1, 5, 5]), "category_name": "Bridge"}
    _write(
        val / "iSAID_val.json",
        [{"id": 1, "file_name": "P0004.png", "width": 32, "height": 32}],
        [
            _instance(1, 1, names, "ship", [1, 1, 9, 1, 9, 9, 1, 9]),
            _instance(2, 1, names, "Ground_Track_Field", [10, 10, 30, 10, 30, 30, 10, 30]),
            bad_polygon,
            wrong_name,
        ],
        names,
    )
    _png(root / "iSAID" / "test" / "images" / "P0006.png", 32, 32, seed=6)


def make_patches(root: Path) -> None:
    train = root / "iSAID_patches" / "train"
    _png(train / "images" / "P0002_0_32_0_32.png", 32, 32, seed=7)
    names = DEVKIT_IDS
    image = {
        "id": 0,
        "width": 32,
        "height": 32,
        "file_name": "P0002_0_32_0_32.png",
        "ins_file_name": "P0002_0_32_0_32_instance_id_RGB.png",
        "seg_file_name": "P0002_0_32_0_32_instance_color_RGB.png",
    }
    instance = _instance(0, 0, names, "Small_Vehicle", [10, 5, 19, 5, 19, 10, 10, 10])
    _write(train / "instancesonly_filtered_train.json", [image], [instance], names)


def make_fixture(root: Path) -> Path:
    """Write both layouts under root and return it."""
    root = Path(root)
    make_raw(root)
    make_patches(root)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "isaid-fixture")))
