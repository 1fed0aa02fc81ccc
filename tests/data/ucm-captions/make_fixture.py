"""Write a toy UCM-Captions tree: ``dataset.json`` beside ``imgs/1.tif`` … as in the MEGA release.

Run ``python tests/data/ucm-captions/make_fixture.py OUT`` to look at it.

Quirks of the real file: key order ``sentids, imgid, sentences, split, filename``; unpadded
``N.tif`` names starting at 1; tokens that keep their case; ``raw`` with a space before the final
period (``"… neatly ."``); a caption repeated to make up five. The clean part is train and val;
test holds a sentence with ``tokens`` but no ``raw``.
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


def _entry(imgid: int, split: str, raws: list[str]) -> dict:
    first = imgid * 5
    return {
        "sentids": list(range(first, first + len(raws))),
        "imgid": imgid,
        "sentences": [
            {"tokens": raw.rstrip(" .").split(), "raw": raw, "imgid": imgid, "sentid": first + j}
            for j, raw in enumerate(raws)
        ],
        "split": split,
        "filename": f"{imgid + 1}.tif",
    }


def make_fixture(root: Path) -> Path:
    """Write ``root/UCM_captions`` and return it."""
    base = Path(root) / "UCM_captions"
    for number in range(1, 5):
        _tif(base / "imgs" / f"{number}.tif", 32, number)
    farmland = [
        "There is a piece of farmland .",
        "There is a piece of cropland .",
        "It is a piece of farmland .",
        "There is a piece of farmland .",
        "There is a piece of farmland .",
    ]
    houses = [f"A residential area with houses arranged neatly {n} ." for n in range(5)]
    broken = _entry(3, "test", ["An airplane is stopped at the airport ."] * 5)
    del broken["sentences"][1]["raw"]
    images = [
        _entry(0, "train", farmland),
        _entry(1, "train", houses),
        _entry(2, "val", ["Many buildings and some green trees are in a dense residential area ."]),
        broken,
    ]
    (base / "dataset.json").write_text(json.dumps({"images": images}), encoding="utf-8")
    return base


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "ucm-captions-fixture")))
