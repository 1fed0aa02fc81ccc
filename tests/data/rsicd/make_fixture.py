"""Write a toy RSICD tree: ``dataset_rsicd.json`` beside ``RSICD_images/``, as distributed.

Run ``python tests/data/rsicd/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

The JSON is one line, Karpathy-style, with a top-level ``"dataset": "rsicd"`` key. Quirks:
``tokens`` that disagree with ``raw`` ("aircraft" vs "planes"), captions copied to make up five,
a trailing space, class-named and numeric image names (``00433.jpg``). The clean part is train
and val; test holds the bad items: a blank ``raw`` and an entry whose image is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _jpg(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _entry(imgid: int, filename: str, split: str, raws: list[str]) -> dict:
    first = imgid * 5
    return {
        "filename": filename,
        "imgid": imgid,
        "sentences": [
            {
                "tokens": raw.lower().rstrip(" .").split(),
                "raw": raw,
                "imgid": imgid,
                "sentid": first + j,
            }
            for j, raw in enumerate(raws)
        ],
        "split": split,
        "sentids": list(range(first, first + len(raws))),
    }


def make_fixture(root: Path) -> Path:
    """Write ``root/RSICD`` and return it."""
    base = Path(root) / "RSICD"
    for seed, name in enumerate(["airport_1.jpg", "00433.jpg", "bareland_1.jpg"]):
        _jpg(base / "RSICD_images" / name, 48, seed)
    airport = _entry(
        0,
        "airport_1.jpg",
        "train",
        [
            "Many aircraft are parked next to a long building in an airport.",
            "Many planes are parked next to a long building at an airport. ",
            "Many planes are parked next to a long building at an airport.",
            "Many aircraft are parked next to a long building in an airport.",
            "Many aircraft are parked next to a long building in an airport.",
        ],
    )
    airport["sentences"][0]["tokens"][1] = (
        "planes"  # the real file: raw "aircraft", tokens "planes"
    )
    images = [
        airport,
        _entry(1, "00433.jpg", "val", ["some green trees are around a white building."] * 5),
        _entry(
            2,
            "bareland_1.jpg",
            "test",
            ["It is a piece of bare land.", "A piece of yellow bare land.", "", "Bare land.", ""],
        ),
        _entry(3, "beach_9.jpg", "test", ["A yellow beach is near the blue sea."] * 5),
    ]
    text = json.dumps({"images": images, "dataset": "rsicd"})
    (base / "dataset_rsicd.json").write_text(text, encoding="utf-8")
    return base


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "rsicd-fixture")))
