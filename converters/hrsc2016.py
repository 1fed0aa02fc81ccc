"""HRSC2016: ships in Google Earth images, rotated boxes in radians, one XML per image.

Dataset
    HRSC2016 (Liu et al., ICPRAM 2017): 1061 BMP images (0.4 to 2 m) of ships at sea and in
    harbours, each ship with a horizontal box, a rotated box and its bow point. Classes form a
    hierarchy (ship → category → type) with 31 codes in use.
Layout
    ::

        ROOT/FullDataSet/AllImages/100000006.bmp          (also Train/ and Test/, same layout)
        ROOT/FullDataSet/Annotations/100000006.xml
        ROOT/ImageSets/{train,val,trainval,test}.txt      one 9-digit id per line
Quirks
    Rotated box ``mbox_cx, mbox_cy, mbox_w, mbox_h, mbox_ang`` with the angle in **radians**,
    measured like :func:`rsgpt4v.geometry.obb_to_polygon` measures degrees: from +x towards +y,
    clockwise on screen (y points down), as the direction of the ``mbox_w`` side. So the
    polygon is ``obb_to_polygon(cx, cy, w, h, degrees(mbox_ang))``. Checked on the released
    100000006.xml: with this sense its bow point (``header_x/y``) lies inside the box at the end
    of the long axis; with the opposite sense it lies 234 px outside. The record's box is the
    source HBB ``box_xmin…box_ymax`` (a ship's own bounds, tighter than the rotated box's). An
    image without ships has an empty ``<HRSC_Objects>`` (whitespace text): no objects. Header
    fields go to ``meta``, except empty ones (written as whitespace) and the file name and size
    (the image block has them, the size read from the image itself: mmrotate 1.x reads the
    height from ``Img_SizeWidth``); ``Img_Resolution`` (m) becomes the GSD. An id is looked
    up in ``FullDataSet/``, then ``Train/`` and ``Test/``. ``trainval`` (the union of ``train``
    and ``val``) is read only when asked for.
Classes
    ``Class_ID`` is ``'1' + '000000' + code``; the code maps to the ``Class_EngName`` of the
    release's ``sysdata.xml`` as mmrotate's 31-class table gives it (``100000013`` →
    ``Kuznetsov``). An id outside that table (codes 21 and 23 are unused) is kept as the id
    string: inventing a name would be wrong and dropping the ship would lose it; the raw id is
    always in ``attributes.class_id``. ``-O classes=ship`` names every object ``ship``, the
    usual one-class benchmark setting.
Citation
    Liu et al., "A High Resolution Optical Satellite Image Dataset for Ship Recognition and
    Some New Baselines", ICPRAM 2017.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar
from xml.etree.ElementTree import Element

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.converters.safe_xml import child_float, child_text
from rsgpt4v.converters.voc import ImageSetConverter, SourceObject, find_image, read_voc_flags
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import obb_to_polygon

HRSC_CLASS_CODES = {
    1: "ship",
    2: "aircraft carrier",
    3: "warcraft",
    4: "merchant ship",
    5: "Nimitz",
    6: "Enterprise",
    7: "Arleigh Burke",
    8: "WhidbeyIsland",
    9: "Perry",
    10: "Sanantonio",
    11: "Ticonderoga",
    12: "Kitty Hawk",
    13: "Kuznetsov",
    14: "Abukuma",
    15: "Austen",
    16: "Tarawa",
    17: "Blue Ridge",
    18: "Container",
    19: "OXo|--)",
    20: "Car carrier([]==[])",
    22: "Hovercraft",
    24: "yacht",
    25: "CntShip(_|.--.--|_]=",
    26: "Cruise",
    27: "submarine",
    28: "lute",
    29: "Medical",
    30: "Car carrier(======|",
    31: "Ford-class",
    32: "Midway-class",
    33: "Invincible-class",
}
HRSC_CLASSES = {f"1000000{code:02d}": name for code, name in HRSC_CLASS_CODES.items()}
DATA_FOLDERS = ("FullDataSet", "Train", "Test")
# already in the record's image block (the real size is read from the image itself)
IMAGE_FIELDS = ("Img_FileName", "Img_FileFmt", "Img_SizeWidth", "Img_SizeHeight", "Img_SizeDepth")


class Hrsc2016Converter(ImageSetConverter):
    NAME = "hrsc2016"
    DESCRIPTION = "HRSC2016 ships: rotated boxes (radians) → polygons, 31 ship classes."
    LAYOUT = (
        "ROOT/FullDataSet/{AllImages/*.bmp,Annotations/*.xml} (or Train/, Test/)"
        " + ROOT/ImageSets/{train,val,trainval,test}.txt"
    )
    SPLITS = ("train", "val", "trainval", "test")
    CLASSES = tuple(HRSC_CLASSES.values())
    COMPLETENESS = LabelCompleteness(
        "all",
        source="HRSC2016 (Liu et al. 2017) labels the ships of its hierarchy; small boats and "
        "ships of unlisted types are left out, and its class names nest",
    )
    OPTIONS: ClassVar[dict[str, str]] = {
        "classes": "type (default: the class name of Class_ID) or ship (one class for all)"
    }
    CITATION = (
        "Liu et al., A High Resolution Optical Satellite Image Dataset for Ship Recognition "
        "and Some New Baselines, ICPRAM 2017"
    )
    SPLIT_FOLDER = "ImageSets"
    OBJECT_PATH = "HRSC_Objects/HRSC_Object"

    def __init__(self, root: str | Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.classes = self.options.get("classes", "type")
        if self.classes not in ("type", "ship"):
            raise InputError("option classes must be type or ship", value=self.classes)

    def annotation_path(self, stem: str) -> Path | None:
        for folder in DATA_FOLDERS:
            path = self.root / folder / "Annotations" / f"{stem}.xml"
            if path.is_file():
                return path
        return None

    def image_path(self, stem: str, split: str, annotation: Path) -> Path:
        return find_image([annotation.parent.parent / "AllImages"], stem, ".bmp")

    def read_object(self, element: Element, file: Path, entry: str) -> SourceObject:
        class_id = child_text(element, "Class_ID", file)
        cx, cy, w, h, radians = (
            child_float(element, f"mbox_{name}", file) for name in ("cx", "cy", "w", "h", "ang")
        )
        if not (all(map(math.isfinite, (cx, cy, w, h, radians))) and w > 0 and h > 0):
            raise InputError(
                "rotated box needs finite numbers and mbox_w, mbox_h > 0",
                file=file,
                value=[cx, cy, w, h, radians],
            )
        xmin, ymin, xmax, ymax = (
            child_float(element, f"box_{side}", file) for side in ("xmin", "ymin", "xmax", "ymax")
        )
        flags = read_voc_flags(element, file)
        attributes = {**flags.pop("attributes"), "class_id": class_id}
        if (element.findtext("header_x") or "").strip():
            attributes["bow"] = [child_float(element, f"header_{axis}", file) for axis in "xy"]
        return SourceObject(
            category="ship" if self.classes == "ship" else HRSC_CLASSES.get(class_id, class_id),
            box=(xmin, ymin, xmax, ymax),
            polygon=obb_to_polygon(cx, cy, w, h, math.degrees(radians)).tolist(),
            attributes=attributes,
            entry=entry,
            **flags,
        )

    def annotation_meta(self, root: Element) -> dict[str, object]:
        """Header fields with text (``Img_Location``, ``Img_Date`` …) the image block lacks."""
        return {
            child.tag: child.text.strip()
            for child in root
            if len(child) == 0
            and child.text
            and child.text.strip()
            and child.tag not in IMAGE_FIELDS
        }

    def annotation_gsd(self, root: Element) -> float | None:
        try:
            gsd = float(root.findtext("Img_Resolution", ""))
        except ValueError:
            return None
        return gsd if math.isfinite(gsd) and gsd > 0 else None
