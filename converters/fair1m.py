"""FAIR1M: fine-grained oriented objects in Gaofen and Google Earth scenes, one XML per image.

Dataset
    FAIR1M 1.0 (Sun et al., ISPRS 2022; the Gaofen challenge data): 15,000+ images of
    1000-10000 px at 0.3-0.8 m, over a million objects in 37 fine-grained classes (5 groups),
    each labelled with a four-corner polygon.
Layout
    One folder per split; train comes in parts::

        ROOT/train/part1/images/0.tif       ROOT/train/part1/labelXml/0.xml
        ROOT/train/part2/images/...         ROOT/train/part2/labelXml/...
        ROOT/validation/images/...          ROOT/validation/labelXml/...
        ROOT/test/images/...                no labels

    The label folder is ``labelXml`` or ``labelXmls`` depending on the distribution (the zip is
    ``labelXmls.zip``). A single folder with ``images/`` and a label folder (one part unpacked
    alone) works too, as split ``all`` or ``--split``. Files are plain numbers (``0.tif``), not
    known to be unique across parts, so record ids keep the part (``fair1m/train/part1/0``).
Quirks
    ``<points>`` holds 5 points whose last repeats the first: it is dropped, leaving the 4-corner
    polygon (an unclosed list is accepted as it is). Points are ``x,y`` with 6 decimals, or
    ``x, y`` in submission templates. The class is ``possibleresult/name``, kept as written
    (``Small Car``, ``Boeing737``, ``other-ship``). The file name sits under ``<source>``; the
    ``<origin>`` (``GF2/GF3``) goes to ``meta.origin``. Some TIFFs have a 4th band. XML labels
    carry no line numbers that survive parsing, so problems name the element
    (``objects/object[3]``, 1-based like XPath).
Citation
    Sun et al., "FAIR1M: A Benchmark Dataset for Fine-grained Object Recognition in
    High-Resolution Remote Sensing Imagery", ISPRS J. Photogramm. Remote Sens., 2022.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.converters.safe_xml import child_text, read_xml
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import polygon_to_clipped_bbox
from rsgpt4v.schema import Object, Record

FAIR1M_CLASSES = (
    # Ship
    "Passenger Ship",
    "Motorboat",
    "Fishing Boat",
    "Tugboat",
    "other-ship",
    "Engineering Ship",
    "Liquid Cargo Ship",
    "Dry Cargo Ship",
    "Warship",
    # Vehicle
    "Small Car",
    "Bus",
    "Cargo Truck",
    "Dump Truck",
    "other-vehicle",
    "Van",
    "Trailer",
    "Tractor",
    "Excavator",
    "Truck Tractor",
    # Airplane
    "Boeing737",
    "Boeing747",
    "Boeing777",
    "Boeing787",
    "ARJ21",
    "C919",
    "A220",
    "A321",
    "A330",
    "A350",
    "other-airplane",
    # Court
    "Baseball Field",
    "Basketball Court",
    "Football Field",
    "Tennis Court",
    # Road
    "Roundabout",
    "Intersection",
    "Bridge",
)
LABEL_FOLDERS = ("labelXml", "labelXmls")
IMAGE_SUFFIXES = (".tif", ".tiff")
POINT_SEPARATOR = re.compile(r"[,\s]+")


def parse_fair1m_points(texts: list[str]) -> list[list[float]]:
    """``<point>`` texts → polygon corners without the closing point; ValueError when unusable."""
    points = []
    for text in texts:
        fields = POINT_SEPARATOR.split(text.strip())
        try:
            x, y = (float(f) for f in fields)
        except ValueError:
            raise ValueError(f"a point must be 'x,y', got {text!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"a point must be finite, got {text!r}")
        points.append([x, y])
    if len(points) > 1 and points[-1] == points[0]:
        points.pop()
    if len(points) < 3:
        raise ValueError(f"an object needs at least 3 distinct points, got {len(points)}")
    return points


class Fair1mConverter(Converter):
    NAME = "fair1m"
    DESCRIPTION = "FAIR1M 1.0: 37 fine-grained classes, 4-corner polygons in one XML per image."
    LAYOUT = (
        "ROOT/train/partN/{images/*.tif, labelXml[s]/*.xml}, ROOT/validation/{images,labelXml}, "
        "ROOT/test/images; or one folder with images/ + labelXml[s]/"
    )
    SPLITS = ("train", "validation", "test")
    CLASSES = FAIR1M_CLASSES
    COMPLETENESS = LabelCompleteness(
        frozenset(FAIR1M_CLASSES[:19]),  # the ship and vehicle classes
        source="FAIR1M (Sun et al. 2022): its ships and vehicles are dense small classes; no "
        "exhaustiveness is claimed for them, and DOTA's measured misses suggest they are partial",
    )
    CITATION = (
        "Sun et al., FAIR1M: A Benchmark Dataset for Fine-grained Object Recognition in "
        "High-Resolution Remote Sensing Imagery, ISPRS J. Photogramm. Remote Sens. 2022"
    )

    # -- layout -------------------------------------------------------------------------------
    def image_folders(self) -> list[tuple[str, str | None, Path]]:
        """(split, part, folder holding images/): one per split, or one per train part."""
        if (self.root / "images").is_dir():
            return [(self.split or "all", None, self.root)]
        if self.split:
            if not (self.root / self.split).is_dir():
                raise InputError(f"no split folder {self.split!r}", file=self.root)
            splits = [self.root / self.split]
        else:
            splits = [p for p in sorted(self.root.iterdir()) if p.is_dir()]
        folders = []
        for split in splits:
            if (split / "images").is_dir():
                folders.append((split.name, None, split))
            else:
                parts = [p for p in sorted(split.iterdir()) if (p / "images").is_dir()]
                folders.extend((split.name, part.name, part) for part in parts)
        if not folders:
            raise InputError(f"no images/ folders; expected {self.LAYOUT}", file=self.root)
        return folders

    def estimate_count(self) -> int | None:
        return sum(len(self._images(folder)) for *_, folder in self.image_folders())

    def _images(self, folder: Path) -> dict[str, Path]:
        return {
            path.stem: path
            for path in sorted((folder / "images").iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        }

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        for split, part, folder in self.image_folders():
            # train/partN: ids keep the part; plain numbered files are not known to be unique
            prefix = f"fair1m/{split}/" + (f"{part}/" if part else "")
            yield from self._folder_records(split, folder, prefix)

    def _folder_records(self, split: str, folder: Path, prefix: str) -> Iterator[Record]:
        images = self._images(folder)
        labels = next((folder / n for n in LABEL_FOLDERS if (folder / n).is_dir()), None)
        if labels is None:
            for image in images.values():
                yield from self._record(split, prefix, image, None)
            return
        labelled = set()
        for label_path in sorted(labels.glob("*.xml")):
            labelled.add(label_path.stem)
            if label_path.stem not in images:
                self.log.reject("label file has no image", label_path, value=label_path.stem)
                continue
            if not self.inside_root(label_path):
                self.log.reject("label file resolves outside the dataset root", label_path)
                continue
            yield from self._record(split, prefix, images[label_path.stem], label_path)
        for stem in sorted(set(images) - labelled):
            self.log.warn("image has no label file; kept as an unlabelled record", images[stem])
            yield from self._record(split, prefix, images[stem], None)

    def _record(
        self, split: str, prefix: str, image: Path, label_path: Path | None
    ) -> Iterator[Record]:
        facts = self.image_facts(image, label_path)
        if facts is None:
            return
        meta: dict[str, object] = {"labelled": label_path is not None}
        objects: list[Object] = []
        if label_path is not None:
            meta["label_file"] = self.relative_path(label_path)
            try:
                annotation = read_xml(label_path)
            except InputError as error:
                self.log.reject(error.reason, error.file or label_path, error.line, error.value)
                return
            origin = annotation.findtext("source/origin")
            if origin and origin.strip():
                meta["origin"] = origin.strip()
            elements = annotation.findall("objects/object")
            objects = self._objects(elements, label_path, facts.width, facts.height)
            if len(objects) < len(elements):  # counts from this image would be wrong
                meta["skipped_objects"] = len(elements) - len(objects)
        yield Record(
            id=prefix + image.stem,
            dataset="fair1m",
            split=split,
            image=image_info(self.relative_path(image), facts),
            objects=objects,
            meta=meta,
        )

    def _objects(
        self, elements: list[Element], label_path: Path, width: int, height: int
    ) -> list[Object]:
        objects: list[Object] = []
        for number, element in enumerate(elements, start=1):
            entry = f"objects/object[{number}]"
            try:
                category = child_text(element, "possibleresult/name", label_path)
            except InputError as error:
                self.log.reject(error.reason, label_path, entry=entry)
                continue
            texts = [point.text or "" for point in element.findall("points/point")]
            try:
                polygon = parse_fair1m_points(texts)
            except ValueError as error:
                self.log.reject(str(error), label_path, value=texts, entry=entry)
                continue
            bbox = polygon_to_clipped_bbox(polygon, width, height)
            if bbox is None:
                self.log.reject(
                    f"object lies outside the {width}x{height} image or has no area",
                    label_path,
                    value=polygon,
                    entry=entry,
                )
                continue
            objects.append(Object(id=len(objects), category=category, bbox=bbox, polygon=polygon))
        return objects
