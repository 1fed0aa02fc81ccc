"""Small records with real images for the LLM tests and bench/llm.py (no dataset needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rsgpt4v.schema import ImageInfo, Object, Record, write_jsonl

CATEGORIES = ("plane", "ship", "small-vehicle")


def make_llm_records(
    folder: Path, count: int, *, size: int = 96, seed: int = 0, objects: tuple[int, int] = (2, 4)
) -> Path:
    """``count`` records (``objects`` min-max objects each, of DOTA classes) with PNG images;
    returns records.jsonl. Objects sit on a 5-column grid. Images live under ``folder/images``;
    ``folder`` is the image root.
    """
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        path = f"images/scene{index:04d}.png"
        Image.fromarray(pixels).save(folder / path)
        labels = []
        cell = size // 5
        for n in range(objects[0] + index % (objects[1] - objects[0] + 1)):
            x, y = 4 + cell * (n % 5), 4 + cell * (n // 5) + 2 * (n % 5)
            w, h = cell * 4 // 5, cell * 2 // 5
            polygon = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
            category = CATEGORIES[(index + n) % 2]  # small-vehicle never appears
            labels.append(Object(id=n, category=category, bbox=[x, y, w, h], polygon=polygon))
        records.append(
            Record(
                id=f"scene{index:04d}",
                dataset="dota",
                split="train",
                image=ImageInfo(path=path, width=size, height=size, gsd=0.5),
                objects=labels,
            )
        )
    return_path = folder / "records.jsonl"
    write_jsonl(return_path, records)
    return return_path


CLUSTER_SCENE = (1200, 1100)  # a scene the low-detail image shrinks to 0.43 (512 / 1200)
SPREAD_CATEGORIES = ("large-vehicle", "storage-tank", "plane", "tennis-court")


def clustered_scene_record(
    cluster: int = 200, *, spread_side: int = 70, path: str = "images/marina.png"
) -> Record:
    """A DOTA-like scene of 1200 x 1100 px: ``cluster`` boats (``ship``, 20-30 x 8 px, the
    size of DOTA's marina boats) packed into the top-left cell of a 4 x 4 grid with one small
    plane among them, and one object of ``spread_side`` px in each of the other 15 cells.
    Boat i has id i; the plane id ``cluster``; the spread objects follow.
    """
    width, height = CLUSTER_SCENE
    labels = []
    for i in range(cluster):
        x, y = 10 + 26 * (i % 10), 10 + 12 * (i // 10)
        labels.append(_box_object(i, "ship", x, y, 20 + (i * 7) % 11, 8))
    labels.append(_box_object(cluster, "plane", 268, 244, 12, 12))  # smaller than any boat
    cells = [(r, c) for r in range(4) for c in range(4) if (r, c) != (0, 0)]
    for n, (row, column) in enumerate(cells):
        cx, cy = (column + 0.5) * width / 4, (row + 0.5) * height / 4
        side = spread_side + 2 * n
        category = SPREAD_CATEGORIES[n % len(SPREAD_CATEGORIES)]
        labels.append(
            _box_object(cluster + 1 + n, category, cx - side / 2, cy - side / 2, side, side)
        )
    return Record(
        id="marina",
        dataset="dota",
        split="train",
        image=ImageInfo(path=path, width=width, height=height, gsd=0.3),
        objects=labels,
    )


def make_clustered_scene(folder: Path, **options) -> Path:
    """:func:`clustered_scene_record` with its image (a colour gradient: red grows with x,
    green with y, so any crop shows where it was cut) under ``folder``; returns records.jsonl."""
    record = clustered_scene_record(**options)
    width, height = CLUSTER_SCENE
    x = np.linspace(0, 255, width)[np.newaxis, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, np.newaxis].repeat(width, 1)
    pixels = np.stack([x, y, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    (folder / record.image.path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / record.image.path)
    path = folder / "records.jsonl"
    write_jsonl(path, [record])
    return path


def _box_object(object_id: int, category: str, x: float, y: float, w: float, h: float) -> Object:
    polygon = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    return Object(id=object_id, category=category, bbox=[x, y, w, h], polygon=polygon)
