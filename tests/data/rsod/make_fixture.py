"""Write a toy RSOD tree in the layout third-party code describes, with both annotation layouts.

Run ``python tests/data/rsod/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``OUT/RSOD/``: four part folders. ``aircraft``: VOC XML and tab-separated text labels for the
  same two images, one box at ``-1`` (clipped). ``oiltank``: XML only, two tanks. ``overpass``:
  an XML with no objects. ``playground``: ``playground_1`` has text labels only (no XML),
  ``playground_2`` has no annotation at all.
- ``OUT/RSOD-malformed/aircraft/``: text labels with a non-numeric coordinate and a line naming
  another image; an XML that is not well-formed; an XML without its image.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data
from fixture_files import noise_image, write_text

# part: {stem: (width, height, objects (class, xmin, ymin, xmax, ymax), annotation layouts)}
PARTS = {
    "aircraft": {
        "aircraft_1": (64, 64, [("aircraft", -1, 4, 12, 14), ("aircraft", 30, 30, 40, 41)], "xt"),
        "aircraft_2": (48, 48, [("aircraft", 5, 5, 15, 15)], "xt"),
    },
    "oiltank": {
        "oiltank_1": (64, 48, [("oiltank", 2, 2, 12, 12), ("oiltank", 20, 20, 31, 31)], "x"),
    },
    "overpass": {"overpass_1": (48, 48, [], "x")},
    "playground": {
        "playground_1": (64, 64, [("playground", 10, 10, 50, 40)], "t"),
        "playground_2": (32, 32, [], ""),
    },
}


def voc_xml(stem: str, width: int, height: int, objects: list) -> str:
    lines = [
        "<annotation>",
        "\t<folder>JPEGImages</folder>",
        f"\t<filename>{stem}.jpg</filename>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>",
        "\t\t<depth>3</depth>\n\t</size>",
    ]
    for name, xmin, ymin, xmax, ymax in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{name}</name>",
            "\t\t<difficult>0</difficult>",
            f"\t\t<bndbox>\n\t\t\t<xmin>{xmin}</xmin>\n\t\t\t<ymin>{ymin}</ymin>",
            f"\t\t\t<xmax>{xmax}</xmax>\n\t\t\t<ymax>{ymax}</ymax>\n\t\t</bndbox>",
            "\t</object>",
        ]
    return "\n".join([*lines, "</annotation>"]) + "\n"


def label_lines(stem: str, objects: list) -> str:
    return "".join(f"{stem}.jpg\t{name}\t{a}\t{b}\t{c}\t{d}\n" for name, a, b, c, d in objects)


def make_clean(root: Path) -> None:
    seed = 0
    for part, images in PARTS.items():
        base = root / "RSOD" / part
        for stem, (width, height, objects, layouts) in images.items():
            seed += 1
            noise_image(base / "JPEGImages" / f"{stem}.jpg", width, height, seed)
            if "x" in layouts:
                write_text(
                    base / "Annotation/xml" / f"{stem}.xml", voc_xml(stem, width, height, objects)
                )
            if "t" in layouts:
                write_text(base / "Annotation/labels" / f"{stem}.txt", label_lines(stem, objects))


def make_malformed(root: Path) -> None:
    base = root / "RSOD-malformed" / "aircraft"
    noise_image(base / "JPEGImages/aircraft_1.jpg", 32, 32, 10)
    noise_image(base / "JPEGImages/aircraft_2.jpg", 32, 32, 11)
    write_text(
        base / "Annotation/labels/aircraft_1.txt",
        "aircraft_1.jpg\taircraft\t1\t1\t9\t9\n"
        "aircraft_1.jpg\taircraft\t4\tx\t12\t12\n"
        "aircraft_7.jpg\taircraft\t2\t2\t8\t8\n",
    )
    write_text(base / "Annotation/xml/aircraft_2.xml", "<annotation>\n\t<object>\n</annotation>\n")
    write_text(base / "Annotation/xml/aircraft_9.xml", voc_xml("aircraft_9", 32, 32, []))


def make_fixture(root: Path) -> Path:
    """Write both trees under root and return it."""
    make_clean(Path(root))
    make_malformed(Path(root))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "rsod-fixture")))
