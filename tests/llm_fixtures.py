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
