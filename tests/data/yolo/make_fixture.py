"""Write toy Ultralytics YOLO datasets in the real on-disk layout.

Run ``python tests/data/yolo/make_fixture.py OUT`` to look at them; the tests call
``make_fixture``.

- ``OUT/yolo-detect/``: ``data.yaml`` with ``path: .``, ``names`` as an ``{id: name}`` mapping and
  ``nc``; ``train`` a folder (``images/train``, one image in a subfolder) and ``val`` a ``.txt``
  list of ``./images/val/…`` paths. Labels: boxes (``class cx cy w h``), a YOLO-OBB line (four
  corners), a six-point segment, a box a hair past the right edge, CRLF endings and a blank
  line; an empty label file (no objects) and an image without a label file (unlabelled).
- ``OUT/yolo-bad/``: ``names`` as a list; a label file with a class id out of range, pixel
  coordinates, an odd number of values, a non-numeric value and a good box.
- ``OUT/yolo-dup/``: a label file whose first box comes back on line 3, and again on line 4
  written ``0.50`` (an exporter's glitch that would count the plane three times).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data
from fixture_files import noise_image, write_text

DETECT_YAML = """\
# exported by a labelling tool
path: .
train: images/train
val: val.txt
nc: 3
names:
  0: plane
  1: ship
  2: storage tank
"""


def make_detect(root: Path) -> None:
    base = root / "yolo-detect"
    write_text(base / "data.yaml", DETECT_YAML)
    noise_image(base / "images/train/a.jpg", 200, 100, 1)
    noise_image(base / "images/train/part2/b.png", 100, 100, 2)
    noise_image(base / "images/train/c.jpg", 50, 50, 3)
    noise_image(base / "images/val/d.jpg", 80, 40, 4)
    noise_image(base / "images/val/e.jpg", 40, 40, 5)
    write_text(
        base / "labels/train/a.txt",
        "0 0.25 0.5 0.1 0.2\r\n1 0.4 0.2 0.6 0.3 0.55 0.5 0.35 0.4\r\n\r\n2 0.98 0.5 0.1 0.2\r\n",
    )
    write_text(
        base / "labels/train/part2/b.txt", "1 0.1 0.1 0.3 0.1 0.4 0.3 0.3 0.5 0.1 0.5 0.0 0.3\n"
    )
    write_text(base / "labels/val/d.txt", "")  # looked at: no objects
    # c.jpg and e.jpg have no label file
    write_text(base / "val.txt", "./images/val/d.jpg\n./images/val/e.jpg\n")


def make_bad(root: Path) -> None:
    base = root / "yolo-bad"
    write_text(base / "data.yaml", "train: images/train\nnames: [plane, ship]\n")
    noise_image(base / "images/train/x.jpg", 100, 100, 6)
    write_text(
        base / "labels/train/x.txt",
        "5 0.5 0.5 0.1 0.1\n0 50 50 10 10\n1 0.1 0.1 0.2\n1 0.5 abc 0.1 0.1\n0 0.5 0.5 0.2 0.2\n",
    )


def make_dup(root: Path) -> None:
    base = root / "yolo-dup"
    write_text(base / "data.yaml", "train: images/train\nnames: [plane, ship]\n")
    noise_image(base / "images/train/x.jpg", 100, 100, 7)
    write_text(
        base / "labels/train/x.txt",
        "0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n0 0.5 0.5 0.2 0.2\n0 0.50 0.5 0.2 0.2\n",
    )


def make_fixture(root: Path) -> Path:
    make_detect(root)
    make_bad(root)
    make_dup(root)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "yolo-fixture")))
