"""RSOD: aircraft, oil tanks, overpasses and playgrounds, one folder per class.

Dataset
    RSOD (Long et al., TGRS 2017; Xiao et al. 2015): 976 Google Earth images in four parts
    downloaded separately: aircraft (446 images, 4993 objects), oiltank (165 / 1586),
    overpass (176 / 180) and playground (189 / 191). Horizontal boxes.
Layout
    Two annotation layouts side by side in each part (the format description is third-party
    and of low-medium confidence, so both are read and neither is required)::

        ROOT/aircraft/JPEGImages/aircraft_1.jpg
        ROOT/aircraft/Annotation/xml/aircraft_1.xml        Pascal VOC
        ROOT/aircraft/Annotation/labels/aircraft_1.txt     one object per line:
            aircraft_1.jpg<TAB>aircraft<TAB>xmin<TAB>ymin<TAB>xmax<TAB>ymax
        ROOT/oiltank/… ROOT/overpass/… ROOT/playground/…
Quirks
    An image is read from its XML, or from its text labels when it has no XML (some
    playground images have none); ``-O labels=txt`` prefers the text labels. Text lines are
    split on tabs or spaces and must name the image of their file. Boxes with negative
    coordinates (``-1``) are clipped. An image with neither annotation is an unlabelled record
    (warned). There is no official split: every image is in split ``all``; the part folder is
    ``meta.part``. Image stems carry the class (``aircraft_1``), so record ids need no folder.
Citation
    Long et al., "Accurate Object Localization in Remote Sensing Images Based on Convolutional
    Neural Networks", IEEE TGRS 2017.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.converters.base import Converter
from rsgpt4v.converters.safe_xml import read_xml
from rsgpt4v.converters.voc import (
    IMAGE_SUFFIXES,
    SourceObject,
    image_info,
    place_objects,
    read_label_text,
    read_voc_object,
    read_xml_objects,
    reject_error,
)
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record

RSOD_CLASSES = ("aircraft", "oiltank", "overpass", "playground")
TXT_FIELDS = 6  # image file name, class, xmin, ymin, xmax, ymax


def parse_rsod_labels(
    text: str, image_name: str
) -> tuple[list[SourceObject], list[tuple[int, str, str]]]:
    """Objects and bad lines ``(line number, line, reason)`` of one text label file."""
    objects: list[SourceObject] = []
    bad: list[tuple[int, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        try:
            box = tuple(float(t) for t in tokens[2:]) if len(tokens) == TXT_FIELDS else ()
        except ValueError:
            box = ()
        if len(box) != 4:
            expected = "image name, class, xmin, ymin, xmax, ymax"
            bad.append((number, raw.strip(), f"not an RSOD label line ({expected})"))
        elif Path(tokens[0]).stem != Path(image_name).stem:
            bad.append((number, raw.strip(), f"line names another image than {image_name}"))
        else:
            objects.append(SourceObject(category=tokens[1], box=box, line=number))
    return objects, bad


class RsodConverter(Converter):
    NAME = "rsod"
    DESCRIPTION = "RSOD: 4 classes in 4 part folders, VOC XML or tab-separated text labels."
    LAYOUT = (
        "ROOT/{aircraft,oiltank,overpass,playground}/JPEGImages/*.jpg"
        " + Annotation/xml/*.xml and/or Annotation/labels/*.txt"
    )
    SPLITS = ("all",)
    CLASSES = RSOD_CLASSES
    COMPLETENESS = LabelCompleteness(
        "all",
        source="RSOD (Long et al. 2017) was gathered one class at a time: each part labels only "
        "its own class (an airport image's oil tanks are not labelled)",
    )
    OPTIONS: ClassVar[dict[str, str]] = {
        "labels": "xml or txt: the annotation layout to prefer (default xml; the other is the "
        "fallback for images it lacks)"
    }
    CITATION = (
        "Long et al., Accurate Object Localization in Remote Sensing Images Based on "
        "Convolutional Neural Networks, IEEE TGRS 2017"
    )

    def __init__(self, root: str | Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.prefer = self.options.get("labels", "xml")
        if self.prefer not in ("xml", "txt"):
            raise InputError("option labels must be xml or txt", value=self.prefer)
        if self.split not in (None, "all"):
            raise InputError(f"RSOD has one split, all (got {self.split!r})", file=self.root)

    def parts(self) -> list[Path]:
        parts = [p for p in sorted(self.root.iterdir()) if (p / "JPEGImages").is_dir()]
        if not parts:
            raise InputError(
                f"no part folder with JPEGImages/; expected {self.LAYOUT}", file=self.root
            )
        return parts

    def images(self, part: Path) -> dict[str, Path]:
        return {
            path.stem: path
            for path in sorted((part / "JPEGImages").iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        }

    def estimate_count(self) -> int | None:
        return sum(len(self.images(part)) for part in self.parts())

    def records(self) -> Iterator[Record]:
        seen: dict[str, Path] = {}
        for part in self.parts():
            images = self.images(part)
            for stem, image in images.items():
                if stem in seen:
                    self.log.reject(f"two images share the id {stem}", image, value=seen[stem])
                    continue
                seen[stem] = image
                yield from self._record(part, stem, image)
            for folder, pattern in (("xml", "*.xml"), ("labels", "*.txt")):
                for orphan in sorted((part / "Annotation" / folder).glob(pattern)):
                    if orphan.stem not in images:
                        self.log.reject("annotation file has no image", orphan)

    def _annotation(self, part: Path, stem: str) -> Path | None:
        """The preferred annotation file of an image, else the other layout's, else None."""
        files = {
            "xml": part / "Annotation" / "xml" / f"{stem}.xml",
            "txt": part / "Annotation" / "labels" / f"{stem}.txt",
        }
        order = ("xml", "txt") if self.prefer == "xml" else ("txt", "xml")
        return next((files[kind] for kind in order if files[kind].is_file()), None)

    def _record(self, part: Path, stem: str, image: Path) -> Iterator[Record]:
        annotation = self._annotation(part, stem)
        if annotation is None:
            self.log.warn("image has no annotation file; kept unlabelled", image)
        elif not self.inside_root(annotation):
            self.log.reject("annotation file resolves outside the dataset root", annotation)
            return
        facts = self.image_facts(image, annotation)
        if facts is None:
            return
        meta: dict[str, object] = {"labelled": annotation is not None, "part": part.name}
        objects = []
        if annotation is not None:
            read = self._read_xml if annotation.suffix == ".xml" else self._read_txt
            found = read(annotation, image.name)
            if found is None:
                return
            sources, count = found
            objects = place_objects(sources, annotation, facts.width, facts.height, self.log)
            meta["annotation_file"] = self.relative_path(annotation)
            if len(objects) < count:
                meta["skipped_objects"] = count - len(objects)
        yield Record(
            id=f"{self.NAME}/all/{stem}",
            dataset=self.NAME,
            split="all",
            image=image_info(self.relative_path(image), facts),
            objects=objects,
            meta=meta,
        )

    def _read_xml(self, path: Path, image_name: str) -> tuple[list[SourceObject], int] | None:
        """(objects, how many the file has); None when the XML cannot be read (rejected).

        ``image_name`` is only checked in text labels; XML files take it for one signature.
        """
        try:
            root = read_xml(path)
        except InputError as error:
            reject_error(self.log, error, path)
            return None
        return read_xml_objects(root, "object", path, read_voc_object, self.log)

    def _read_txt(self, path: Path, image_name: str) -> tuple[list[SourceObject], int] | None:
        try:
            text = read_label_text(path)
        except InputError as error:
            reject_error(self.log, error, path)
            return None
        sources, bad = parse_rsod_labels(text, image_name)
        for number, line, reason in bad:
            self.log.reject(reason, path, number, line)
        return sources, len(sources) + len(bad)
