"""NWPU VHR-10: 800 very-high-resolution images, 10 classes, one text line per box.

Dataset
    NWPU VHR-10 (Cheng et al., ISPRS 2014): 650 positive images with 3896 boxes in 10 classes
    and 150 negative images without objects; 715 Google Earth images (0.5 to 2 m) and 85
    Vaihingen colour-infrared ones (0.08 m), of varying size.
Layout
    Folder names contain spaces; ids are 3-digit and restart at 001 in each image set, so
    the record id keeps the set (``nwpu-vhr10/negative/001``)::

        ROOT/positive image set/001.jpg … 650.jpg       split "positive"
        ROOT/negative image set/001.jpg … 150.jpg       split "negative": no objects
        ROOT/ground truth/001.txt … 650.txt             one box per line, positive set only
Quirks
    A line is ``(x1,y1),(x2,y2),c``: top-left corner, bottom-right corner, class id 1 to 10 (the
    readme's table gives the names). Numbers are space-padded inside the parentheses
    (``( 72,305),( 123,334),1``), almost every line ends with a space, a few have one before
    the class id (``, 6``), some files have blank lines or several at the end, and 14 have no
    final newline. Coordinates are kept as written: the box is ``[x1, y1, x2 - x1, y2 - y1]``
    (whether the corners are inclusive pixel indices is not documented). There are no split
    files: the two image sets are the splits. Negative images are labelled records with no
    objects; a positive image without a ground-truth file is an unlabelled record (warned).
Citation
    Cheng et al., "Multi-class geospatial object detection and geographic image
    classification based on collection of part detectors", ISPRS J. Photogramm. 2014.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from rsgpt4v.completeness import DENSE_SMALL_CLASSES, LabelCompleteness
from rsgpt4v.converters.base import Converter
from rsgpt4v.converters.voc import (
    IMAGE_SUFFIXES,
    SourceObject,
    image_info,
    label_lines,
    read_line_labels,
)
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record

NWPU_CLASSES = {
    1: "airplane",
    2: "ship",
    3: "storage tank",
    4: "baseball diamond",
    5: "tennis court",
    6: "basketball court",
    7: "ground track field",
    8: "harbor",
    9: "bridge",
    10: "vehicle",
}
IMAGE_SETS = {"positive": "positive image set", "negative": "negative image set"}
GROUND_TRUTH = "ground truth"
GT_LINE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*(\d+)")


def parse_nwpu_ground_truth(text: str) -> tuple[list[SourceObject], list[tuple[int, str, str]]]:
    """Objects and bad lines ``(line number, line, reason)`` of one ground-truth file."""
    objects: list[SourceObject] = []
    bad: list[tuple[int, str, str]] = []
    for number, line in label_lines(text):
        match = GT_LINE.fullmatch(line)
        if match is None:
            bad.append((number, line, "not a ground-truth line '(x1,y1),(x2,y2),class id'"))
            continue
        x1, y1, x2, y2, class_id = (int(group) for group in match.groups())
        if class_id not in NWPU_CLASSES:
            bad.append((number, line, "class id must be 1 to 10"))
            continue
        objects.append(
            SourceObject(category=NWPU_CLASSES[class_id], box=(x1, y1, x2, y2), line=number)
        )
    return objects, bad


class NwpuVhr10Converter(Converter):
    NAME = "nwpu-vhr10"
    DESCRIPTION = "NWPU VHR-10: 10 classes, horizontal boxes in '(x1,y1),(x2,y2),c' text lines."
    LAYOUT = (
        "ROOT/positive image set/*.jpg + ROOT/ground truth/*.txt + ROOT/negative image set/*.jpg"
    )
    SPLITS = ("positive", "negative")
    CLASSES = tuple(NWPU_CLASSES.values())
    COMPLETENESS = LabelCompleteness(
        frozenset({"vehicle", "ship"}),
        source="NWPU VHR-10 (Cheng et al. 2014): " + DENSE_SMALL_CLASSES,
    )
    CITATION = (
        "Cheng et al., Multi-class geospatial object detection and geographic image "
        "classification based on collection of part detectors, ISPRS J. Photogramm. 2014"
    )

    def splits(self) -> list[str]:
        present = [s for s in self.SPLITS if (self.root / IMAGE_SETS[s]).is_dir()]
        if self.split is not None:
            if self.split not in present:
                found = ", ".join(present) or "none"
                raise InputError(
                    f"no image set for split {self.split!r} (found: {found})", file=self.root
                )
            return [self.split]
        if not present:
            raise InputError(f"no image set folders; expected {self.LAYOUT}", file=self.root)
        return present

    def images(self, split: str) -> dict[str, Path]:
        folder = self.root / IMAGE_SETS[split]
        return {
            path.stem: path
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        }

    def estimate_count(self) -> int | None:
        return sum(len(self.images(split)) for split in self.splits())

    def records(self) -> Iterator[Record]:
        for split in self.splits():
            images = self.images(split)
            for stem, image in images.items():
                yield from self._record(split, stem, image)
            if split == "positive":
                for label in sorted((self.root / GROUND_TRUTH).glob("*.txt")):
                    if label.stem not in images:
                        self.log.reject("ground-truth file has no positive image", label)

    def _record(self, split: str, stem: str, image: Path) -> Iterator[Record]:
        label = self.root / GROUND_TRUTH / f"{stem}.txt"
        labelled = split == "negative" or label.is_file()
        if not labelled:
            self.log.warn("positive image has no ground-truth file; kept unlabelled", image)
        facts = self.image_facts(image, label if split == "positive" else None)
        if facts is None:
            return
        meta: dict[str, object] = {"labelled": labelled}
        objects = []
        if split == "positive" and labelled:
            if not self.inside_root(label):
                self.log.reject("ground-truth file resolves outside the dataset root", label)
                return
            meta["label_file"] = self.relative_path(label)
            objects = read_line_labels(
                label, parse_nwpu_ground_truth, facts.width, facts.height, self.log, meta
            )
            if objects is None:
                return
        yield Record(
            id=f"{self.NAME}/{split}/{stem}",
            dataset=self.NAME,
            split=split,
            image=image_info(self.relative_path(image), facts),
            objects=objects,
            meta=meta,
        )
