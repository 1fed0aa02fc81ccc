"""Write a toy HRSC2016 tree in the real on-disk layout, with the quirks of the real files.

Run ``python tests/data/hrsc2016/make_fixture.py OUT`` to look at it; the tests call
``make_fixture``.

``OUT/HRSC2016/``: BMP images, ``<HRSC_Image>`` XML with 2-space indentation, LF and empty
elements written as an opening tag, a newline and the closing tag (whitespace text).

- ``FullDataSet/``: ``100000001`` (a Kuznetsov at -1.0 rad with its bow point, and a difficult
  ship of unused class code 21), ``100000002`` (empty ``<HRSC_Objects>``), ``100000003`` (a
  ship whose HBB reaches past the bottom edge, truncated).
- ``Test/``: ``100000004`` (clean) and ``100000005`` (``mbox_ang`` = ``abc``, and a second
  object without ``mbox_w``), only in the test split.
- ``ImageSets/{train,val,trainval,test}.txt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

EMPTY = ("Img_Des", "Img_SclPxlNum", "Img_MaskFileName", "Img_MaskFileFmt", "Img_MaskType")

# Ships: Class_ID, difficult, truncated, box (xmin ymin xmax ymax), mbox (cx cy w h ang), bow.
KUZNETSOV = ("100000013", 0, 0, (12, 5, 38, 39), (25, 22, 36, 10, -1.0), (16, 36))
CODE_21 = ("100000021", 1, 0, (42, 36, 62, 44), (52, 40, 20, 8, 0.0), (61, 40))
IMAGES = {
    "100000001": ("FullDataSet", 64, 48, [KUZNETSOV, CODE_21]),
    "100000002": ("FullDataSet", 48, 48, []),
    "100000003": (
        "FullDataSet",
        48,
        48,
        [("100000001", 0, 1, (20, 30, 30, 60), (25, 45, 30, 10, 1.5707963), (25, 59))],
    ),
    "100000004": (
        "Test",
        40,
        40,
        [("100000018", 0, 0, (5, 5, 25, 15), (15, 10, 20, 10, 0.0), (24, 10))],
    ),
    "100000005": (
        "Test",
        40,
        40,
        [
            ("100000002", 0, 0, (5, 5, 25, 15), (15, 10, 20, 10, "abc"), (24, 10)),
            ("100000002", 0, 0, (5, 5, 25, 15), (15, 10, None, 10, 0.0), (24, 10)),
        ],
    ),
}
SPLITS = {
    "train": ["100000001", "100000002"],
    "val": ["100000003"],
    "trainval": ["100000001", "100000002", "100000003"],
    "test": ["100000004", "100000005"],
}


def _bmp(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _ship(ship: tuple) -> list[str]:
    class_id, difficult, truncated, box, mbox, bow = ship
    lines = [
        "    <HRSC_Object>",
        "      <Object_ID>100000006</Object_ID>",
        f"      <Class_ID>{class_id}</Class_ID>",
        "      <Object_NO>100000006</Object_NO>",
        f"      <truncated>{truncated}</truncated>",
        f"      <difficult>{difficult}</difficult>",
    ]
    lines += [
        f"      <box_{k}>{v}</box_{k}>"
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    ]
    lines += [
        f"      <mbox_{k}>{v}</mbox_{k}>"
        for k, v in zip(("cx", "cy", "w", "h", "ang"), mbox, strict=True)
        if v is not None
    ]
    lines += [
        "      <segmented>0</segmented>",
        "      <seg_color>",
        "      </seg_color>",
        f"      <header_x>{bow[0]}</header_x>",
        f"      <header_y>{bow[1]}</header_y>",
        "    </HRSC_Object>",
    ]
    return lines


def hrsc_xml(stem: str, width: int, height: int, ships: list[tuple]) -> str:
    lines = [
        "<HRSC_Image>",
        f"  <Img_ID>{stem}</Img_ID>",
        "  <Place_ID>100000001</Place_ID>",
        f"  <Img_FileName>{stem}</Img_FileName>",
        "  <Img_FileFmt>bmp</Img_FileFmt>",
        "  <Img_Date>1900-01-01</Img_Date>",
        "  <Img_CusType>sealand</Img_CusType>",
        "  <Img_Location>69.040297,33.070036</Img_Location>",
        f"  <Img_SizeWidth>{width}</Img_SizeWidth>",
        f"  <Img_SizeHeight>{height}</Img_SizeHeight>",
        "  <Img_SizeDepth>3</Img_SizeDepth>",
        "  <Img_Resolution>1.07</Img_Resolution>",
    ]
    for tag in EMPTY:
        lines += [f"  <{tag}>", f"  </{tag}>"]
    lines += ["  <Annotated>1</Annotated>", "  <HRSC_Objects>"]
    for ship in ships:
        lines += _ship(ship)
    lines += ["  </HRSC_Objects>", "</HRSC_Image>"]
    return "\n".join(lines) + "\n"


def make_fixture(root: Path) -> Path:
    """Write ``root/HRSC2016`` and return root."""
    base = Path(root) / "HRSC2016"
    for seed, (stem, (folder, width, height, ships)) in enumerate(IMAGES.items()):
        _bmp(base / folder / "AllImages" / f"{stem}.bmp", width, height, seed)
        xml = base / folder / "Annotations" / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_bytes(hrsc_xml(stem, width, height, ships).encode("utf-8"))
    for split, stems in SPLITS.items():
        listing = base / "ImageSets" / f"{split}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_bytes("".join(f"{s}\n" for s in stems).encode("ascii"))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "hrsc2016-fixture")))
