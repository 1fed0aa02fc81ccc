"""Write toy Pascal VOC datasets: the VOC layout with split files, and labelImg's loose XML files.

Run ``python tests/data/voc/make_fixture.py OUT`` to look at them; the tests call
``make_fixture``.

- ``OUT/voc-standard/``: ``Annotations/{a,b,c}.xml``, ``JPEGImages/a.jpg, b.png, c.jpg``,
  ``ImageSets/Main/{train,val,trainval}.txt`` (``trainval`` repeats both and is not read).
  ``a`` has a difficult, truncated ship and a plane past the right edge.
- ``OUT/labelimg/``: ``img1.jpg`` + ``img1.xml`` and ``sub/img2.png`` + ``sub/img2.xml`` as
  labelImg saves them (``<path>`` of another machine, ``<pose>``, ``<segmented>``);
  ``img2.xml`` has an object whose ``xmin`` is not a number; ``img1.jpg.aux.xml`` is the PAM
  sidecar QGIS writes beside an image (not an annotation).
- ``OUT/voc-bad/<case>/``: labelImg files with one problem each: ``inf`` (a ship whose ``xmax``
  is ``inf`` beside a good car), ``resized`` (``<size>`` 128x96 on a 64x48 image: the labels of
  another copy of it).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data
from fixture_files import noise_image, write_text


def voc_xml(filename: str, width: int, height: int, objects: list[tuple]) -> str:
    """labelImg's XML; an object is (name, xmin, ymin, xmax, ymax, truncated, difficult)."""
    parts = [
        "<annotation>\n\t<folder>images</folder>\n",
        f"\t<filename>{filename}</filename>\n\t<path>C:\\Users\\me\\images\\{filename}</path>\n",
        "\t<source>\n\t\t<database>Unknown</database>\n\t</source>\n",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n",
        "\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n",
    ]
    for name, x0, y0, x1, y1, truncated, difficult in objects:
        parts.append(
            f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{truncated}</truncated>\n\t\t<difficult>{difficult}</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n"
            f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        )
    return "".join(parts) + "</annotation>\n"


def make_standard(root: Path) -> None:
    base = root / "voc-standard"
    noise_image(base / "JPEGImages/a.jpg", 64, 48, 1)
    noise_image(base / "JPEGImages/b.png", 32, 32, 2)
    noise_image(base / "JPEGImages/c.jpg", 40, 40, 3)
    a = [("ship", 10, 12, 30, 40, 1, 1), ("plane", 50, 5, 70, 20, 0, 0)]
    write_text(base / "Annotations/a.xml", voc_xml("a.jpg", 64, 48, a))
    write_text(base / "Annotations/b.xml", voc_xml("b.png", 32, 32, [("ship", 1, 2, 9, 12, 0, 0)]))
    write_text(base / "Annotations/c.xml", voc_xml("c.jpg", 40, 40, []))
    write_text(base / "ImageSets/Main/train.txt", "a\nb\n")
    write_text(base / "ImageSets/Main/val.txt", "c\n")
    write_text(base / "ImageSets/Main/trainval.txt", "a\nb\nc\n")


def make_labelimg(root: Path) -> None:
    base = root / "labelimg"
    noise_image(base / "img1.jpg", 50, 50, 4)
    noise_image(base / "sub/img2.png", 60, 30, 5)
    write_text(base / "img1.xml", voc_xml("img1.jpg", 50, 50, [("car", 5, 5, 15, 10, 0, 0)]))
    write_text(base / "img1.jpg.aux.xml", "<PAMDataset>\n  <Metadata />\n</PAMDataset>\n")
    two = [("car", 1, 1, 11, 11, 0, 0), ("car", "left", 1, 11, 11, 0, 0)]
    write_text(base / "sub/img2.xml", voc_xml("img2.png", 60, 30, two))


def make_bad(root: Path) -> None:
    base = root / "voc-bad"
    noise_image(base / "inf/inf.jpg", 64, 48, 6)
    both = [("ship", 10, 12, "inf", 40, 0, 0), ("car", 5, 5, 15, 10, 0, 0)]
    write_text(base / "inf/inf.xml", voc_xml("inf.jpg", 64, 48, both))
    noise_image(base / "resized/resized.jpg", 64, 48, 7)
    car = [("car", 20, 10, 40, 30, 0, 0)]
    write_text(base / "resized/resized.xml", voc_xml("resized.jpg", 128, 96, car))


def make_fixture(root: Path) -> Path:
    make_standard(root)
    make_labelimg(root)
    make_bad(root)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "voc-fixture")))
