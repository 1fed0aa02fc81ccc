"""Write a toy DOTA tree in the real on-disk layouts, with the quirks of the real files.

Run ``python tests/data/dota/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``OUT/DOTA/``: v1.0 distributed layout. train has OBB and HBB folders, CRLF everywhere,
  ``imagesource:``/``gsd:`` headers (``gsd:null`` in one), float ``.0`` coordinates, difficult
  0/1, a polygon past the image edge, a 1-channel PNG and a label file with no objects; val
  has ``gsd:None`` and one malformed line; test has images only.
- ``OUT/DOTA-v1.5/``: ``labelTxt-v1.5/DOTA-v1.5_train`` with ``container-crane``.
- ``OUT/DOTA-v2.0/``: images nested in ``images/part4/``, labels without header lines, the
  metadata in ``meta/`` (``acquisition dates:``, ``gsd:null`` in one).
- ``OUT/devkit/``: ``images/`` + ``labelTxt/`` as DOTA_devkit expects.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

CRLF = "\r\n"


def _png(path: Path, width: int, height: int, *, gray: bool = False, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    shape = (height, width) if gray else (height, width, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)


def _text(path: Path, lines: list[str], newline: str = CRLF, final: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = newline.join(lines) + (newline if final and lines else "")
    path.write_bytes(body.encode("utf-8"))


def make_v10(root: Path) -> None:
    train = root / "DOTA" / "train"
    _png(train / "images" / "P0001.png", 64, 48, seed=1)
    _png(train / "images" / "P0002.png", 40, 40, gray=True, seed=2)
    _png(train / "images" / "P0003.png", 32, 32, seed=3)
    obb = train / "labelTxt-v1.0" / "labelTxt"
    _text(
        obb / "P0001.txt",
        [
            "imagesource:GoogleEarth",
            "gsd:0.146343590398",
            "10 5 30 5 30 15 10 15 plane 0",
            "50 30 63 32 70 44 55 42 ship 1",  # reaches x=70 in a 64-px image
            "2.0 20.0 8.0 20.0 8.0 26.0 2.0 26.0 small-vehicle 0",
            "12.5 30.5 20.5 30.5 20.5 36.5 12.5 36.5 small-vehicle 0",
        ],
    )
    _text(
        obb / "P0002.txt",
        [
            "imagesource:GF",
            "gsd:null",
            "5 5 15 5 15 15 5 15 storage-tank 1",
        ],
    )
    _text(obb / "P0003.txt", ["imagesource:GoogleEarth", "gsd:0.5"])
    hbb = train / "labelTxt-v1.0" / "trainset_reclabelTxt"
    _text(
        hbb / "P0001.txt",
        [
            "imagesource:GoogleEarth",
            "gsd:0.146343590398",
            "10 5 30 5 30 15 10 15 plane 0",
            "50 30 70 30 70 44 50 44 ship 1",
            "2 20 8 20 8 26 2 26 small-vehicle 0",
            "12 30 21 30 21 37 12 37 small-vehicle 0",
        ],
    )
    val = root / "DOTA" / "val"
    _png(val / "images" / "P0004.png", 32, 32, seed=4)
    _text(
        val / "labelTxt-v1.0" / "labelTxt" / "P0004.txt",
        [
            "imagesource:GoogleEarth",
            "gsd:None",
            "1 1 9 1 9 9 1 9 tennis-court 0",
            "4 4 12 4 12 x 4 12 tennis-court 0",  # malformed: a coordinate is not a number
        ],
    )
    _png(root / "DOTA" / "test" / "images" / "P0005.png", 32, 32, seed=5)


def make_v15(root: Path) -> None:
    train = root / "DOTA-v1.5" / "train"
    _png(train / "images" / "P0001.png", 64, 48, seed=1)
    _text(
        train / "labelTxt-v1.5" / "DOTA-v1.5_train" / "P0001.txt",
        [
            "imagesource:GoogleEarth",
            "gsd:0.146343590398",
            "8184.0 364.0 8189.0 364.0 8188.0 375.0 8183.0 376.0 small-vehicle 1",  # outside
            "20.0 10.0 40.0 10.0 40.0 20.0 20.0 20.0 container-crane 0",
        ],
    )


def make_v20(root: Path) -> None:
    train = root / "DOTA-v2.0" / "train"
    _png(train / "images" / "part4" / "P2806.png", 48, 48, seed=6)
    _png(train / "images" / "part5" / "P2807.png", 48, 32, seed=7)
    labels = train / "labelTxt-v2.0" / "DOTA-v2.0_train"
    _text(
        labels / "P2806.txt",
        [
            "1.5 2.5 30.5 2.5 30.5 40.5 1.5 40.5 airport 0",
            "33.0 33.0 41.0 33.0 41.0 41.0 33.0 41.0 helipad 0",
        ],
    )
    _text(labels / "P2807.txt", ["5.0 5.0 15.0 5.0 15.0 12.0 5.0 12.0 container-crane 0"])
    meta = train / "meta"
    _text(meta / "P2806.txt", ["acquisition dates:None", "imagesource:GoogleEarth", "gsd:0.4"])
    _text(meta / "P2807.txt", ["acquisition dates:2017-05-01", "imagesource:GF2", "gsd:null"])


def make_devkit(root: Path) -> None:
    base = root / "devkit"
    _png(base / "images" / "P0706.png", 56, 60, seed=8)
    _text(
        base / "labelTxt" / "P0706.txt",
        [
            "imagesource:GoogleEarth",
            "gsd:0.255589285596",
            "50 40 52 38 57 42 56 45 ship 1",  # reaches x=57 in a 56-px image
            "40 30 38 29 41 27 43 28 ship 0",
        ],
    )


def make_fixture(root: Path) -> Path:
    """Write every layout under root and return it."""
    for make in (make_v10, make_v15, make_v20, make_devkit):
        make(Path(root))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "dota-fixture")))
