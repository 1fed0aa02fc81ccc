"""Write toy DIOR-RSVG trees in the layout of the authors' README and loader.

Run ``python tests/data/dior-rsvg/make_fixture.py OUT``; the tests call ``make_fixture``.

- ``OUT/DIOR_RSVG/``: ``Annotations/0000{1,2,3}.xml`` (XML declaration with ``standalone``,
  2-space indentation, LF, one ``<description>`` per object) holding objects 0-5 in file-name
  order, ``JPEGImages/*.jpg`` and split files of **object indices**: ``train.txt`` 1 2 3,
  ``val.txt`` 5, ``test.txt`` 0 4 — so 00001 and 00002 each have expressions in two splits.
  Object 3 reaches past the image edge; object 2 is an ``Expressway-Service-area``.
- ``OUT/DIOR_RSVG-image-ids/``: the same annotations with a ``train.txt`` of image ids
  (``00001``, ``00003.jpg``), as DIOR's own ``ImageSets`` write them.
- ``OUT/DIOR_RSVG-bad/``: an object without ``<description>``, one outside the image, an
  annotation whose image is missing and an index beyond the last object.
- ``OUT/DIOR_RSVG-broken-xml/``: a truncated annotation file before a good one.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def _jpg(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _xml(path: Path, size: int, objects: list[tuple[str, Box, str | None]]) -> None:
    """An annotation in the style of RSVGD/Annotations/00001.xml; None: no <description>."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        "<annotation>",
        f"  <filename>{path.stem}.jpg</filename>",
        "  <source>",
        "    <database>DIOR</database>",
        "  </source>",
        "  <size>",
        f"    <width>{size}</width>",
        f"    <height>{size}</height>",
        "    <depth>3</depth>",
        "  </size>",
        "  <segmented>0</segmented>",
    ]
    for name, (xmin, ymin, xmax, ymax), description in objects:
        lines += [
            "  <object>",
            f"    <name>{name}</name>",
            "    <pose>Unspecified</pose>",
            "    <bndbox>",
            f"      <xmin>{xmin}</xmin>",
            f"      <ymin>{ymin}</ymin>",
            f"      <xmax>{xmax}</xmax>",
            f"      <ymax>{ymax}</ymax>",
            "    </bndbox>",
        ]
        if description is not None:
            lines.append(f"    <description>{description}</description>")
        lines.append("  </object>")
    lines.append("</annotation>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join(lines).encode("utf-8"))


def _lines(path: Path, entries: list[str]) -> None:
    path.write_bytes(("\n".join(entries) + "\n").encode("utf-8"))


def make_clean(root: Path) -> Path:
    base = root / "DIOR_RSVG"
    annotations = base / "Annotations"
    _xml(
        annotations / "00001.xml",
        64,
        [
            ("golffield", (5, 10, 40, 50), "A green and brown golf field"),
            ("vehicle", (50, 50, 56, 54), "The vehicle on the lower right"),
        ],
    )
    _xml(
        annotations / "00002.xml",
        64,
        [
            ("Expressway-Service-area", (0, 0, 30, 20), "An expressway service area at the top"),
            ("ship", (40, 30, 70, 44), "The ship on the right"),  # xmax 70 in a 64-px image
            ("ship", (10, 40, 20, 60), "The ship on the left"),
        ],
    )
    _xml(annotations / "00003.xml", 48, [("windmill", (20, 20, 30, 40), "A white windmill")])
    for seed, (stem, size) in enumerate([("00001", 64), ("00002", 64), ("00003", 48)]):
        _jpg(base / "JPEGImages" / f"{stem}.jpg", size, seed)
    _lines(base / "train.txt", ["1", "2", "3"])
    _lines(base / "val.txt", ["5"])
    _lines(base / "test.txt", ["0", "4"])
    return base


def make_image_ids(root: Path, clean: Path) -> None:
    base = root / "DIOR_RSVG-image-ids"
    shutil.copytree(clean / "Annotations", base / "Annotations")
    shutil.copytree(clean / "JPEGImages", base / "JPEGImages")
    _lines(base / "train.txt", ["00001", "00003.jpg"])


def make_bad(root: Path) -> None:
    base = root / "DIOR_RSVG-bad"
    _xml(
        base / "Annotations" / "00001.xml",
        32,
        [
            ("airplane", (2, 2, 12, 12), "The airplane at the top left"),
            ("airplane", (14, 2, 24, 12), None),  # no referring expression
            ("airplane", (40, 40, 50, 50), "An airplane outside the image"),
        ],
    )
    _xml(base / "Annotations" / "00002.xml", 32, [("dam", (1, 1, 9, 9), "A dam")])  # no image
    _jpg(base / "JPEGImages" / "00001.jpg", 32, 7)
    _lines(base / "train.txt", ["0", "1", "2", "3", "99"])


def make_broken_xml(root: Path, clean: Path) -> None:
    base = root / "DIOR_RSVG-broken-xml"
    (base / "Annotations").mkdir(parents=True)
    (base / "Annotations" / "00001.xml").write_text("<annotation>\n  <object>\n")
    shutil.copy(clean / "Annotations" / "00002.xml", base / "Annotations" / "00002.xml")
    shutil.copytree(clean / "JPEGImages", base / "JPEGImages")
    _lines(base / "train.txt", ["0"])


def make_fixture(root: Path) -> Path:
    """Write every tree under root and return it."""
    root = Path(root)
    clean = make_clean(root)
    make_image_ids(root, clean)
    make_bad(root)
    make_broken_xml(root, clean)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "dior-rsvg-fixture")))
