"""Write a toy RSITMD tree: ``dataset_RSITMD.json`` beside ``images/*.tif``.

Run ``python tests/data/rsitmd/make_fixture.py OUT`` to look at it.

Karpathy JSON with an extra per-image ``keywords`` key (to be ignored). The clean part is train;
test holds the blank sentences of copies older than the 2021-10-28 fix (an empty ``raw`` and a
whitespace-only one).
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
        "filename": filename,
        "imgid": imgid,
        "keywords": [filename.split("_")[0]],
        "sentences": [
            {"tokens": raw.lower().rstrip(" .").split(), "raw": raw, "sentid": imgid * 5 + j}
            for j, raw in enumerate(raws)
        ],
        "split": split,
        "sentids": [imgid * 5 + j for j in range(len(raws))],
    }


def make_fixture(root: Path) -> Path:
    """Write ``root/RSITMD`` and return it."""
    base = Path(root) / "RSITMD"
    names = ["baseballfield_452.tif", "plane_1.tif", "boat_3.tif"]
    for seed, name in enumerate(names):
        _tif(base / "images" / name, 64, seed)
    images = [
        _entry(0, names[0], "train", [f"A baseball field is next to {n} trees." for n in "abcde"]),
        _entry(1, names[1], "train", [f"Plane number {n} sits on the apron." for n in range(5)]),
        _entry(2, names[2], "test", ["Boats are moored at the pier.", "", "Some boats.", "  "]),
    ]
    (base / "dataset_RSITMD.json").write_text(json.dumps({"images": images}), encoding="utf-8")
    return base


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "rsitmd-fixture")))
