"""Write a toy UC Merced Land Use tree with torchgeo's split files beside it.

Run ``python tests/data/ucm/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

``OUT/UCMerced_LandUse/Images/<class>/<class>NN.tif`` (lowercase class folders, two-digit
numbers without separator), one image off the nominal square size, and
``OUT/uc_merced-{train,val,test}.txt`` (one file name per line, LF) as torchgeo downloads them.
``OUT/splits-bad/`` holds split files with problems: a name that is not in the dataset, an
image listed in two splits, and images listed nowhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = {
    "agricultural": ["agricultural00.tif", "agricultural01.tif"],
    "airplane": ["airplane00.tif"],
    "denseresidential": ["denseresidential00.tif"],
}


def _tif(path: Path, width: int, height: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\n" for line in lines).encode())


def make_fixture(root: Path) -> Path:
    """Write the tree under root and return root (the ROOT to convert)."""
    root = Path(root)
    images = root / "UCMerced_LandUse" / "Images"
    for seed, (label, names) in enumerate(IMAGES.items()):
        for name in names:
            _tif(images / label / name, 32, 30 if label == "denseresidential" else 32, seed)
    _lines(root / "uc_merced-train.txt", ["agricultural00.tif", "airplane00.tif"])
    _lines(root / "uc_merced-val.txt", ["agricultural01.tif"])
    _lines(root / "uc_merced-test.txt", ["denseresidential00.tif"])
    _lines(root / "splits-bad" / "train.txt", ["agricultural00.tif", "beach00.tif"])
    _lines(root / "splits-bad" / "test.txt", ["agricultural00.tif"])
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "ucm-fixture")))
