"""Write a toy DIOR / DIOR-R tree in the real on-disk layout, with the quirks of the real files.

Run ``python tests/data/dior/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

``OUT/DIOR/`` holds both annotation sets for the same ids, in the folders with spaces:

- HBB XML tab-indented and compacted as in the third-party quote, no declaration, no
  ``<difficult>``; OBB XML with a declaration, 4-space indentation and ``<robndbox>`` corners.
- train: ``00001`` (``golffield`` and an ``Expressway-Service-area`` past the right edge, rotated
  in DIOR-R), ``00002`` (no objects). val: ``00003`` (``Expressway-toll-station``, difficult in
  DIOR-R), whose image sits in ``JPEGImages-test/`` (the reported trainval/test overlap).
- test: ``00004`` (clean), ``00005`` (an object with ``xmin`` = ``abc`` / a missing corner, and
  one outside the image), ``00006`` (not well-formed XML): the malformed items stay in test so
  train and val can be read alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data
from fixture_files import noise_image, write_text

HBB = "Annotations/Horizontal Bounding Boxes"
OBB = "Annotations/Oriented Bounding Boxes"

# id: (image folder, width, height, HBB objects (name, xmin, ymin, xmax, ymax),
#      OBB objects (name, difficult, 4 corners))
IMAGES = {
    "00001": (
        "JPEGImages-trainval",
        64,
        64,
        [("golffield", 10, 12, 50, 44), ("Expressway-Service-area", 40, 30, 70, 60)],
        [
            ("golffield", 0, [(10, 12), (50, 12), (50, 44), (10, 44)]),
            ("Expressway-Service-area", 0, [(44, 30), (70, 40), (62, 60), (40, 50)]),
        ],
    ),
    "00002": ("JPEGImages-trainval", 48, 48, [], []),
    "00003": (
        "JPEGImages-test",
        64,
        48,
        [("Expressway-toll-station", 5, 6, 20, 30)],
        [("Expressway-toll-station", 1, [(5, 10), (18, 6), (20, 26), (7, 30)])],
    ),
    "00004": (
        "JPEGImages-test",
        32,
        32,
        [("airplane", 1, 2, 11, 12)],
        [("airplane", 0, [(1, 2), (11, 2), (11, 12), (1, 12)])],
    ),
    "00005": (
        "JPEGImages-test",
        32,
        32,
        [("ship", "abc", 2, 8, 9), ("ship", 40, 40, 50, 50), ("vehicle", 3, 4, 9, 10)],
        [
            ("ship", 0, [(2, 2), (8, 2), (8, None), (2, 9)]),
            ("ship", 0, [(40, 40), (50, 40), (50, 50), (40, 50)]),
            ("vehicle", 0, [(3, 4), (9, 4), (9, 10), (3, 10)]),
        ],
    ),
    "00006": ("JPEGImages-test", 32, 32, [], []),
}
SPLITS = {"train": ["00001", "00002"], "val": ["00003"], "test": ["00004", "00005", "00006"]}
CORNERS = ("left_top", "right_top", "right_bottom", "left_bottom")


def hbb_xml(stem: str, width: int, height: int, objects: list) -> str:
    lines = [
        "<annotation>",
        f"\t<filename>{stem}.jpg</filename>",
        "\t<source><database>DIOR</database></source>",
        f"\t<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
        "\t<segmented>0</segmented>",
    ]
    for name, xmin, ymin, xmax, ymax in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{name}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>",
            "\t</object>",
        ]
    return "\n".join([*lines, "</annotation>"]) + "\n"


def obb_xml(stem: str, width: int, height: int, objects: list) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<annotation>",
        "    <folder>/JPEGImages-trainval.zip/JPEGImages-trainval/JPEGImages-trainval</folder>",
        f"    <filename>{stem}.jpg</filename>",
        "    <source>",
        "        <database>Unknown</database>",
        "    </source>",
        "    <size>",
        f"        <width>{width}</width>",
        f"        <height>{height}</height>",
        "        <depth>3</depth>",
        "    </size>",
        "    <segmented>0</segmented>",
    ]
    for name, difficult, corners in objects:
        lines += [
            "    <object>",
            "        <type>robndbox</type>",
            f"        <name>{name}</name>",
            "        <pose>Unspecified</pose>",
            "        <truncated>0</truncated>",
            f"        <difficult>{difficult}</difficult>",
            "        <robndbox>",
        ]
        for corner, (x, y) in zip(CORNERS, corners, strict=True):
            lines.append(f"            <x_{corner}>{x}</x_{corner}>")
            if y is not None:  # a missing corner coordinate: the malformed object
                lines.append(f"            <y_{corner}>{y}</y_{corner}>")
        lines += ["        </robndbox>", "        <angle>0</angle>", "    </object>"]
    return "\n".join([*lines, "</annotation>"]) + "\n"


def make_fixture(root: Path) -> Path:
    """Write ``root/DIOR`` and return root."""
    base = Path(root) / "DIOR"
    for seed, (stem, (folder, width, height, hbb, obb)) in enumerate(IMAGES.items()):
        noise_image(base / folder / f"{stem}.jpg", width, height, seed)
        if stem == "00006":  # truncated download: the closing tags are missing
            broken = hbb_xml(stem, width, height, [("ship", 1, 1, 5, 5)]).rsplit("\t</object>")[0]
            write_text(base / HBB / f"{stem}.xml", broken)
            write_text(base / OBB / f"{stem}.xml", broken)
            continue
        write_text(base / HBB / f"{stem}.xml", hbb_xml(stem, width, height, hbb))
        write_text(base / OBB / f"{stem}.xml", obb_xml(stem, width, height, obb))
    for split, stems in SPLITS.items():
        write_text(base / "ImageSets/Main" / f"{split}.txt", "".join(f"{s}\n" for s in stems))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "dior-fixture")))
