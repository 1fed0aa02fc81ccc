"""Write a toy NWPU VHR-10 tree in the real on-disk layout, with the byte-level quirks of the GT.

Run ``python tests/data/nwpu-vhr10/make_fixture.py OUT`` to look at it; the tests call
``make_fixture``.

- ``OUT/NWPU VHR-10 dataset/``: three positive images with ground truth, LF only: trailing spaces
  after the class id (none after a class-10 line), numbers space-padded inside the parentheses,
  ``, 6 `` with a space before the id, blank lines inside and at the end of ``002.txt``, no final
  newline in ``003.txt`` (whose last box reaches past the image edge); two negative images whose
  ids restart at 001; the readme.
- ``OUT/NWPU VHR-10 malformed/``: a GT file with a non-numeric coordinate, class id 11 and a box
  outside the image; a positive image without GT; a GT file without image.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data
from fixture_files import noise_image, write_text

README = "NWPU VHR-10 dataset\n1-airplane, 2-ship, 3-storage tank, 4-baseball diamond, ...\n"


def make_clean(root: Path) -> None:
    base = root / "NWPU VHR-10 dataset"
    noise_image(base / "positive image set/001.jpg", 64, 64, 1)
    noise_image(base / "positive image set/002.jpg", 64, 48, 2)
    noise_image(base / "positive image set/003.jpg", 48, 48, 3)
    noise_image(base / "negative image set/001.jpg", 40, 40, 4)
    noise_image(base / "negative image set/002.jpg", 32, 48, 5)
    gt = base / "ground truth"
    write_text(gt / "001.txt", "(10,12),(30,40),1 \n( 5,  9),(20,22),10\n(33,20),( 63,47),2 \n")
    write_text(gt / "002.txt", "( 1,2),(10,12),3 \n\n(20,20),(40,30), 6 \n\n\n")
    write_text(gt / "003.txt", "(2,3),(12,13),9 \n(14,15),(70,30),7 ")
    write_text(base / "readme.txt", README)


def make_malformed(root: Path) -> None:
    base = root / "NWPU VHR-10 malformed"
    noise_image(base / "positive image set/001.jpg", 32, 32, 6)
    noise_image(base / "positive image set/002.jpg", 32, 32, 7)
    noise_image(base / "negative image set/001.jpg", 32, 32, 8)
    gt = base / "ground truth"
    write_text(
        gt / "001.txt", "(1,1),(9,9),1 \n(10,x),(20,20),1 \n(1,1),(5,5),11 \n(50,50),(60,60),2 \n"
    )
    write_text(gt / "009.txt", "(1,1),(9,9),1 \n")


def make_fixture(root: Path) -> Path:
    """Write both trees under root and return it."""
    make_clean(Path(root))
    make_malformed(Path(root))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "nwpu-vhr10-fixture")))
