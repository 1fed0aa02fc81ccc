"""Write a toy HRRSD (OPT2017) tree in the real on-disk layout, with the quirks of the real files.

Run ``python tests/data/hrrsd/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

``OUT/OPT2017/``: tab-indented XML without declaration, LF, every file with the
``<owner><name>snail_crowling</name></owner>`` trap, ``pose=overlook`` and ``difficult=0``.

- train: ``00001`` (``airplane`` and ``T junction``), ``00002`` (``parking lot``,
  ``ground track field`` reaching past the bottom edge); val: ``00003`` (``storage tank``);
  ``trainval`` lists all three.
- test: ``00004`` (not well-formed XML) and ``00005`` (an object without ``<name>``).
- per-class split files with spaces in their names (``T junction_train.txt``,
  ``ground track field_val.txt``), lines ``<id> <1|-1>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data
from fixture_files import noise_image, write_text

# id: (width, height, objects (name, xmin, ymin, xmax, ymax)); a None name leaves <name> out
IMAGES = {
    "00001": (64, 64, [("airplane", 10, 12, 20, 30), ("T junction", 30, 30, 50, 60)]),
    "00002": (64, 48, [("parking lot", 1, 1, 20, 20), ("ground track field", 22, 10, 60, 70)]),
    "00003": (48, 48, [("storage tank", 5, 5, 15, 15)]),
    "00004": (32, 32, [("bridge", 1, 1, 10, 10)]),
    "00005": (32, 32, [(None, 1, 1, 10, 10), ("vehicle", 2, 3, 8, 9)]),
}
SPLITS = {
    "train": ["00001", "00002"],
    "val": ["00003"],
    "trainval": ["00001", "00002", "00003"],
    "test": ["00004", "00005"],
}
CLASS_SPLITS = {
    "T junction_train.txt": "00001 1\n00002 -1\n",
    "ground track field_val.txt": "00003 -1\n",
    "airplane_train.txt": "00001 1\n00002 -1\n",
}


def hrrsd_xml(stem: str, width: int, height: int, objects: list) -> str:
    lines = [
        "<annotation>",
        "\t<folder>OPTIMAL_Z</folder>",
        f"\t<filename>{stem}.jpg</filename>",
        "\t<source>",
        "\t\t<database>The OPTIMAL_Z Database</database>",
        "\t\t<annotation>OPTIMAL_Z_anno</annotation>",
        "\t\t<image>OPTIMAL_Z_img</image>",
        "\t\t<flickrid>NULL</flickrid>",
        "\t</source>",
        "\t<owner>",
        "\t\t<flickrid>NULL</flickrid>",
        "\t\t<name>snail_crowling</name>",
        "\t</owner>",
        "\t<size>",
        f"\t\t<width>{width}</width>",
        f"\t\t<height>{height}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for name, xmin, ymin, xmax, ymax in objects:
        lines += ["\t<object>"]
        lines += [f"\t\t<name>{name}</name>"] if name is not None else []
        lines += [
            "\t\t<pose>overlook</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{xmin}</xmin>",
            f"\t\t\t<ymin>{ymin}</ymin>",
            f"\t\t\t<xmax>{xmax}</xmax>",
            f"\t\t\t<ymax>{ymax}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    return "\n".join([*lines, "</annotation>"]) + "\n"


def make_fixture(root: Path) -> Path:
    """Write ``root/OPT2017`` and return root."""
    base = Path(root) / "OPT2017"
    for seed, (stem, (width, height, objects)) in enumerate(IMAGES.items()):
        noise_image(base / "JPEGImages" / f"{stem}.jpg", width, height, seed)
        xml = hrrsd_xml(stem, width, height, objects)
        if stem == "00004":  # a stray ampersand: not well-formed at line 4
            xml = xml.replace("<source>", "<source>&", 1)
        write_text(base / "Annotations" / f"{stem}.xml", xml)
    main = base / "ImageSets" / "Main"
    for split, stems in SPLITS.items():
        write_text(main / f"{split}.txt", "".join(f"{s}\n" for s in stems))
    for name, text in CLASS_SPLITS.items():
        write_text(main / name, text)
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "hrrsd-fixture")))
