"""Write toy NWPU-RESISC45 trees with split files in both accepted forms.

Run ``python tests/data/resisc45/make_fixture.py OUT`` to look at it.

- ``OUT/RESISC45/NWPU-RESISC45/<class>/<class>_NNN.jpg``: snake_case class folders,
  three-digit numbers; torchgeo's ``resisc45-{train,val,test}.txt`` (file names, LF) in
  ``OUT/RESISC45``; and ``OUT/RESISC45/splits/{train,val,test}.txt`` with ``class/file`` paths,
  CRLF and a blank line, for ``-O splits=splits``.
- ``OUT/RESISC45-spaces/``: a redistribution whose class folders use spaces
  (``baseball diamond``), plus an image lying outside any class folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = {
    "airplane": ["airplane_001.jpg", "airplane_002.jpg"],
    "baseball_diamond": ["baseball_diamond_001.jpg"],
    "sea_ice": ["sea_ice_001.jpg"],
}


def _jpg(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _lines(path: Path, lines: list[str], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode())


def make_fixture(root: Path) -> Path:
    """Write both trees under root and return root."""
    root = Path(root)
    base = root / "RESISC45"
    for seed, (label, names) in enumerate(IMAGES.items()):
        for name in names:
            _jpg(base / "NWPU-RESISC45" / label / name, 32, seed)
    _lines(base / "resisc45-train.txt", ["airplane_001.jpg", "baseball_diamond_001.jpg"])
    _lines(base / "resisc45-val.txt", ["airplane_002.jpg"])
    _lines(base / "resisc45-test.txt", ["sea_ice_001.jpg"])
    crlf = "\r\n"
    _lines(base / "splits" / "train.txt", ["airplane/airplane_001.jpg", ""], crlf)
    _lines(
        base / "splits" / "val.txt", ["airplane/airplane_002.jpg", "sea_ice/sea_ice_001.jpg"], crlf
    )
    _lines(base / "splits" / "test.txt", ["baseball_diamond/baseball_diamond_001.jpg"], crlf)
    spaces = root / "RESISC45-spaces" / "NWPU-RESISC45"
    _jpg(spaces / "baseball diamond" / "baseball_diamond_001.jpg", 32, 7)
    _jpg(spaces / "airplane" / "airplane_001.jpg", 32, 8)
    _jpg(spaces / "stray_001.jpg", 32, 9)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "resisc45-fixture")))
