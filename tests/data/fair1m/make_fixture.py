"""Write a toy FAIR1M tree in the real on-disk layout, with the quirks of the real files.

Run ``python tests/data/fair1m/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``train/part1``: ``labelXml/``, tab-indented XML with the ``<source>``/``<research>``/``<size>``
  header, 5-point objects whose last point repeats the first, multi-word classes (``Small Car``,
  ``Dry Cargo Ship``) and ``Boeing737``, one ``x, y`` point with a space, an object past the image
  edge; ``1.tif`` is a 4-band TIFF with an empty ``<objects/>``.
- ``train/part2``: ``labelXmls/`` (the other folder name), numbered from 0 again.
- ``validation``: one object with a non-numeric point, one without ``<possibleresult>``, and a
  label file that is not well-formed XML.
- ``test``: images only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
\t<source>
\t\t<filename>{name}</filename>
\t\t<origin>GF2/GF3</origin>
\t</source>
\t<research>
\t\t<version>1.0</version>
\t\t<provider>Company/School of team</provider>
\t\t<author>team name</author>
\t\t<pluginname>FAIR1M</pluginname>
\t\t<pluginclass>object detection</pluginclass>
\t\t<time>2021-03</time>
\t</research>
\t<size>
\t\t<width>{width}</width>
\t\t<height>{height}</height>
\t\t<depth>3</depth>
\t</size>
"""

OBJECT = """\t\t<object>
\t\t\t<coordinate>pixel</coordinate>
\t\t\t<type>rectangle</type>
\t\t\t<description>None</description>
\t\t\t<possibleresult>
\t\t\t\t<name>{name}</name>
\t\t\t</possibleresult>
\t\t\t<points>
{points}\t\t\t</points>
\t\t</object>
"""


def _tif(path: Path, width: int, height: int, bands: int = 3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 255, (height, width, bands), dtype=np.uint8)
    Image.fromarray(pixels, mode="RGBA" if bands == 4 else "RGB").save(path)


def _point(x: float, y: float, sep: str = ",") -> str:
    return f"{x:.6f}{sep}{y:.6f}"


def _object(name: str, corners: list[tuple[float, float]], raw: list[str] | None = None) -> str:
    texts = raw or [_point(x, y) for x, y in [*corners, corners[0]]]  # closing point repeated
    points = "".join(f"\t\t\t\t<point>{t}</point>\n" for t in texts)
    return OBJECT.format(name=name, points=points)


def _xml(path: Path, image: str, size: tuple[int, int], objects: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = HEADER.format(name=image, width=size[0], height=size[1])
    if objects:
        body += "\t<objects>\n" + "".join(objects) + "\t</objects>\n"
    else:
        body += "\t<objects/>\n"
    path.write_text(body + "</annotation>\n", encoding="utf-8")


def make_fixture(root: Path) -> Path:
    """Write the tree under root and return it."""
    root = Path(root)
    part1 = root / "train" / "part1"
    _tif(part1 / "images" / "0.tif", 64, 48, seed=1)
    _xml(
        part1 / "labelXml" / "0.xml",
        "0.tif",
        (64, 48),
        [
            _object("Small Car", [(10, 5), (20, 5), (20, 11), (10, 11)]),
            _object("Boeing737", [(30.5, 10.25), (50.5, 12.25), (48.5, 30.25), (28.5, 28.25)]),
            _object("Dry Cargo Ship", [(55, 30), (70, 30), (70, 40), (55, 40)]),  # past x=64
            _object(
                "other-vehicle",
                [],
                raw=[
                    _point(2, 40, ", "),  # submission-template style
                    _point(8, 40, ", "),
                    _point(8, 46, ", "),
                    _point(2, 46, ", "),
                    _point(2, 40, ", "),
                ],
            ),
        ],
    )
    _tif(part1 / "images" / "1.tif", 40, 40, bands=4, seed=2)
    _xml(part1 / "labelXml" / "1.xml", "1.tif", (40, 40), [])
    part2 = root / "train" / "part2"
    _tif(part2 / "images" / "0.tif", 32, 32, seed=3)
    _xml(
        part2 / "labelXmls" / "0.xml",
        "0.tif",
        (32, 32),
        [_object("Tennis Court", [(4, 4), (20, 4), (20, 12), (4, 12)])],
    )
    validation = root / "validation"
    _tif(validation / "images" / "2.tif", 32, 32, seed=4)
    _xml(
        validation / "labelXml" / "2.xml",
        "2.tif",
        (32, 32),
        [
            _object("Bus", [(1, 1), (9, 1), (9, 9), (1, 9)]),
            _object("Van", [], raw=["4.0,4.0", "12.0,abc", "12.0,12.0", "4.0,12.0", "4.0,4.0"]),
            OBJECT.format(name="Van", points="").replace(
                "\t\t\t<possibleresult>\n\t\t\t\t<name>Van</name>\n\t\t\t</possibleresult>\n", ""
            ),
        ],
    )
    _tif(validation / "images" / "3.tif", 32, 32, seed=5)
    (validation / "labelXml" / "3.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotation>\n\t<objects>\n</annotation>\n'
    )
    _tif(root / "test" / "images" / "4.tif", 32, 32, seed=6)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "fair1m-fixture")))
