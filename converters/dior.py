"""DIOR (horizontal boxes) and DIOR-R (oriented boxes): 23463 optical images, 20 classes.

Dataset
    DIOR (Li et al., ISPRS 2020): 23463 Google Earth images of 800x800 px, 192k objects in 20
    classes, Pascal VOC style XML. DIOR-R (Cheng et al., TGRS 2022) relabels the same objects
    with oriented boxes written as four corner points.
Layout
    Folder names contain spaces; ids are 5-digit (``00001``)::

        ROOT/JPEGImages-trainval/00001.jpg … 11725.jpg
        ROOT/JPEGImages-test/11726.jpg … 23463.jpg
        ROOT/Annotations/Horizontal Bounding Boxes/00001.xml      DIOR
        ROOT/Annotations/Oriented Bounding Boxes/00001.xml        DIOR-R
        ROOT/ImageSets/Main/{train,val,test}.txt                  one bare id per line
Quirks
    Class strings keep their casing (``Expressway-Service-area``, ``Expressway-toll-station``)
    and spelling (``golffield``). HBB files have no ``<difficult>``/``<truncated>`` (read as 0
    when absent); OBB files have an XML declaration and a ``<robndbox>`` of eight corner
    coordinates, read in the order every loader uses (left_top, right_top, right_bottom,
    left_bottom) — for rotated boxes the names are labels, not geometry. ``<angle>`` (unit
    unverified) is redundant with the corners and not read. The trainval/test image boundary
    is reported inconsistently, so an image is looked up in the split's folder first, then in
    the other one (and in a plain ``JPEGImages/``). Older HBB copies put the XML directly in
    ``Annotations/``; that folder is the fallback.
Citation
    Li et al., "Object detection in optical remote sensing images: A survey and a new
    benchmark", ISPRS J. Photogramm. Remote Sens., 2020.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar
from xml.etree.ElementTree import Element

from rsgpt4v.completeness import DENSE_SMALL_CLASSES, LabelCompleteness
from rsgpt4v.converters.safe_xml import child_float, child_text
from rsgpt4v.converters.voc import ImageSetConverter, SourceObject, find_image, read_voc_flags

DIOR_CLASSES = (
    "airplane",
    "airport",
    "baseballfield",
    "basketballcourt",
    "bridge",
    "chimney",
    "dam",
    "Expressway-Service-area",
    "Expressway-toll-station",
    "golffield",
    "groundtrackfield",
    "harbor",
    "overpass",
    "ship",
    "stadium",
    "storagetank",
    "tenniscourt",
    "trainstation",
    "vehicle",
    "windmill",
)
CORNERS = ("left_top", "right_top", "right_bottom", "left_bottom")
IMAGE_FOLDERS = ("JPEGImages-trainval", "JPEGImages-test", "JPEGImages")


class DiorConverter(ImageSetConverter):
    NAME = "dior"
    DESCRIPTION = "DIOR optical images, 20 classes, horizontal boxes (VOC XML)."
    LAYOUT = (
        "ROOT/JPEGImages-{trainval,test}/*.jpg + ROOT/Annotations/Horizontal Bounding Boxes/*.xml"
        " + ROOT/ImageSets/Main/{train,val,test}.txt"
    )
    SPLITS = ("train", "val", "test")
    CLASSES = DIOR_CLASSES
    COMPLETENESS = LabelCompleteness(
        frozenset({"vehicle", "ship"}),
        source="DIOR (Li et al. 2020): " + DENSE_SMALL_CLASSES,
    )
    CITATION = (
        "Li et al., Object detection in optical remote sensing images: A survey and a new "
        "benchmark, ISPRS J. Photogramm. Remote Sens. 2020"
    )
    ANNOTATION_FOLDERS: ClassVar[tuple[str, ...]] = (
        "Annotations/Horizontal Bounding Boxes",
        "Annotations",
    )

    def annotation_path(self, stem: str) -> Path | None:
        for folder in self.ANNOTATION_FOLDERS:
            path = self.root / folder / f"{stem}.xml"
            if path.is_file():
                return path
        return None

    def image_path(self, stem: str, split: str, annotation: Path) -> Path:
        own = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        folders = [own, *(f for f in IMAGE_FOLDERS if f != own)]
        return find_image((self.root / f for f in folders), stem)


class DiorRConverter(DiorConverter):
    NAME = "dior-r"
    DESCRIPTION = "DIOR-R: the DIOR images with oriented boxes (four corners per object)."
    LAYOUT = (
        "ROOT/JPEGImages-{trainval,test}/*.jpg + ROOT/Annotations/Oriented Bounding Boxes/*.xml"
        " + ROOT/ImageSets/Main/{train,val,test}.txt"
    )
    CITATION = (
        "Cheng et al., Anchor-free Oriented Proposal Generator for Object Detection, IEEE TGRS 2022"
    )
    ANNOTATION_FOLDERS = ("Annotations/Oriented Bounding Boxes",)

    def read_object(self, element: Element, file: Path, entry: str) -> SourceObject:
        """``<robndbox>`` corners → polygon; the record's box is the polygon's clipped bounds."""
        polygon = [
            [
                child_float(element, f"robndbox/x_{corner}", file),
                child_float(element, f"robndbox/y_{corner}", file),
            ]
            for corner in CORNERS
        ]
        return SourceObject(
            category=child_text(element, "name", file),
            polygon=polygon,
            entry=entry,
            **read_voc_flags(element, file),
        )
