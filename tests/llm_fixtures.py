"""Small records with real images for the LLM tests and bench/llm.py (no dataset needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rsgpt4v.schema import ImageInfo, Object, Record, write_jsonl

CATEGORIES = ("plane", "ship", "small-vehicle")


def make_llm_records(folder: Path, count: int, *, size: int = 96, seed: int = 0) -> Path:
    """``count`` records (each 2-4 objects of DOTA classes) with PNG images; returns records.jsonl.

    Images live under ``folder/images``; ``folder`` is the image root.
    """
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        path = f"images/scene{index:04d}.png"
        Image.fromarray(pixels).save(folder / path)
        objects = []
        for n in range(2 + index % 3):
            x, y = 8 + 20 * n, 10 + 6 * n
            polygon = [[x, y], [x + 16, y], [x + 16, y + 8], [x, y + 8]]
            category = CATEGORIES[(index + n) % 2]  # small-vehicle never appears
            objects.append(Object(id=n, category=category, bbox=[x, y, 16, 8], polygon=polygon))
        records.append(
            Record(
                id=f"scene{index:04d}",
                dataset="dota",
                split="train",
                image=ImageInfo(path=path, width=size, height=size, gsd=0.5),
                objects=objects,
            )
        )
    return_path = folder / "records.jsonl"
    write_jsonl(return_path, records)
    return return_path
