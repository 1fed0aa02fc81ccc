"""Write a toy NWPU-Captions tree: ``dataset_nwpu.json`` beside ``NWPU_images/<class>/``.

Run ``python tests/data/nwpu-captions/make_fixture.py OUT`` to look at it.

Not Karpathy: an object keyed by class name whose flat entries hold ``raw``, ``raw_1`` …
``raw_4`` and integer ``sentids`` … ``sentids_4``, without tokens. Captions end with `` .``;
one entry repeats a caption. The clean part is train and val; test holds
``airplane_111.jpg``, whose image is missing, and an airport entry with a blank ``raw_2``.
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
    entry: dict[str, object] = {"filename": filename, "imgid": imgid, "split": split}
    for j, raw in enumerate(raws):
        suffix = f"_{j}" if j else ""
        entry[f"raw{suffix}"] = raw
        entry[f"sentids{suffix}"] = imgid * 5 + j
    return entry


def make_fixture(root: Path) -> Path:
    """Write ``root/NWPU-Captions`` and return it."""
    base = Path(root) / "NWPU-Captions"
    for seed, (label, name) in enumerate(
        [("airplane", "airplane_001.jpg"), ("airplane", "airplane_002.jpg"),
         ("airport", "airport_001.jpg")]
    ):  # fmt: skip
        _jpg(base / "NWPU_images" / label / name, 32, seed)
    data = {
        "airplane": [
            _entry(
                0,
                "airplane_001.jpg",
                "train",
                [
                    "Two larger planes and a smaller plane parked on the open area .",
                    "Two larger airplanes and one smaller airplane are parked at the airport .",
                    "Three planes are parked on the concrete ground .",
                    "Two larger airplanes and one smaller airplane are parked at the airport .",
                    "There are three planes on the ground .",
                ],
            ),
            _entry(1, "airplane_002.jpg", "val", [f"A white plane {n} ." for n in range(5)]),
            _entry(2, "airplane_111.jpg", "test", [f"A plane {n} ." for n in range(5)]),
        ],
        "airport": [
            _entry(
                3,
                "airport_001.jpg",
                "test",
                ["An airport with runways .", "Planes at gates .", " ", "Runways .", "Gates ."],
            )
        ],
    }
    (base / "dataset_nwpu.json").write_text(json.dumps(data), encoding="utf-8")
    return base


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "nwpu-captions-fixture")))
