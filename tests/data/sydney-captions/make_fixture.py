"""Write a toy Sydney-Captions tree: ``dataset.json`` beside ``images/N.tif`` (torchrs layout).

Run ``python tests/data/sydney-captions/make_fixture.py OUT`` to look at it.

Same Karpathy JSON as UCM-Captions (``N.tif`` names, `` .`` endings). The clean part is train and
val; test lists ``2.tif`` a second time, which is an error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _tif(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _entry(imgid: int, filename: str, split: str, raws: list[str]) -> dict:
    return {
        "sentids": [imgid * 5 + j for j in range(len(raws))],
        "imgid": imgid,
        "sentences": [
            {
                "tokens": raw.rstrip(" .").split(),
                "raw": raw,
                "imgid": imgid,
                "sentid": imgid * 5 + j,
            }
            for j, raw in enumerate(raws)
        ],
        "split": split,
        "filename": filename,
    }


def make_fixture(root: Path) -> Path:
    """Write ``root/Sydney_captions`` and return it."""
    base = Path(root) / "Sydney_captions"
    for number in (1, 2):
        _tif(base / "images" / f"{number}.tif", 48, number)
    images = [
        _entry(0, "1.tif", "train", ["A residential area with many houses .", "Many houses ."]),
        _entry(1, "2.tif", "val", ["An airport with a long runway ."]),
        _entry(2, "2.tif", "test", ["The same image listed again ."]),
    ]
    (base / "dataset.json").write_text(json.dumps({"images": images}), encoding="utf-8")
    return base


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "sydney-captions-fixture")))
