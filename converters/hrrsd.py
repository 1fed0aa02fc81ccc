"""HRRSD (TGRS-HRRSD, "OPT2017"): 21761 images, 13 classes, Pascal VOC XML.

Dataset
    HRRSD (Zhang et al., TGRS 2019): 21761 Google Earth and Baidu Map images of varying size
    (e.g. 1272x1504), 57137 objects in 13 classes with horizontal boxes.
Layout
    ::

        ROOT/JPEGImages/00001.jpg … 21761.jpg          (ROOT is the OPT2017 folder)
        ROOT/Annotations/00001.xml …
        ROOT/ImageSets/Main/{train,val,trainval,test}.txt     one id per line
        ROOT/ImageSets/Main/{cls}_{set}.txt                   "00001 1" / "00053 -1", not read
Quirks
    Every XML has ``<owner><name>snail_crowling</name></owner>``: only ``object/name`` is a
    class, never any other ``name``. Class strings contain spaces and an uppercase letter
    (``T junction``, ``ground track field``) and are kept as written. The per-class split files
    have spaces in their names (``T junction_train.txt``); splits are read only from the four
    main files, so those are never taken for splits. Tab indentation, LF, no XML declaration.
    ``trainval`` is the union of ``train`` and ``val`` and is read only when asked for.
Citation
    Zhang et al., "Hierarchical and Robust Convolutional Neural Network for Very
    High-Resolution Remote Sensing Object Detection", IEEE TGRS 2019.
"""

from __future__ import annotations

from pathlib import Path

from rsgpt4v.completeness import DENSE_SMALL_CLASSES, LabelCompleteness
from rsgpt4v.converters.voc import ImageSetConverter, find_image

HRRSD_CLASSES = (
    "airplane",
    "baseball diamond",
    "basketball court",
    "bridge",
    "crossroad",
    "ground track field",
    "harbor",
    "parking lot",
    "ship",
    "storage tank",
    "T junction",
    "tennis court",
    "vehicle",
)


class HrrsdConverter(ImageSetConverter):
    NAME = "hrrsd"
    DESCRIPTION = "HRRSD (OPT2017): 13 classes with spaces in their names, VOC XML boxes."
    LAYOUT = (
        "ROOT/JPEGImages/*.jpg + ROOT/Annotations/*.xml"
        " + ROOT/ImageSets/Main/{train,val,trainval,test}.txt (ROOT = OPT2017)"
    )
    SPLITS = ("train", "val", "trainval", "test")
    CLASSES = HRRSD_CLASSES
    COMPLETENESS = LabelCompleteness(
        frozenset({"vehicle", "ship"}),
        source="HRRSD (Zhang et al. 2019): " + DENSE_SMALL_CLASSES,
    )
    CITATION = (
        "Zhang et al., Hierarchical and Robust Convolutional Neural Network for Very "
        "High-Resolution Remote Sensing Object Detection, IEEE TGRS 2019"
    )

    def annotation_path(self, stem: str) -> Path | None:
        path = self.root / "Annotations" / f"{stem}.xml"
        return path if path.is_file() else None

    def image_path(self, stem: str, split: str, annotation: Path) -> Path:
        return find_image([self.root / "JPEGImages"], stem)
