"""Write a toy AID tree: ``OUT/AID/<Class>/<class>_N.jpg``, no split files (AID has none).

Run ``python tests/data/aid/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

CamelCase class folders with lowercase, unpadded file names (``AID/Port/port_120.jpg``), images
of two sizes, and a ``Thumbs.db`` left by Windows inside a class folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = {
    "Airport": ["airport_1.jpg", "airport_2.jpg"],
    "DenseResidential": ["denseresidential_10.jpg"],
    "Port": ["port_120.jpg"],
}


def _jpg(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_fixture(root: Path) -> Path:
    """Write the tree under root and return root (the ROOT to convert)."""
    root = Path(root)
    for seed, (label, names) in enumerate(IMAGES.items()):
        for name in names:
            _jpg(root / "AID" / label / name, 60 if label == "Port" else 48, seed)
    (root / "AID" / "Port" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "aid-fixture")))
