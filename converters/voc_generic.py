"""Your own Pascal VOC XML labels: the VOC layout, or labelImg's XML files beside their images.

Dataset
    Pascal VOC XML, the default output of labelImg and an export of CVAT, Label Studio and
    Roboflow: how many analysts keep their own box labels.
Layout
    ``ROOT/Annotations/*.xml`` + ``ROOT/JPEGImages/*`` with split files
    ``ROOT/ImageSets/Main/{train,val,trainval,test}.txt`` (read as for DIOR: ``trainval`` only
    when ``train`` and ``val`` are not both there); or, without split files, every ``*.xml``
    under ROOT (but GDAL's ``*.aux.xml`` sidecars) with the image of the same stem beside it
    (labelImg) or in ``ROOT/JPEGImages``, split ``all``.
Quirks
    Each ``<object>``'s own ``name`` is the class, kept as written (never ``owner/name``);
    ``bndbox`` corners as written, the box clipped to the image; ``difficult`` and ``truncated``
    flags kept. Bad objects are rejected by XPath (``/annotation/object[2]``), malformed XML by
    line. Record ids are ``voc/SPLIT/NAME`` (``-O dataset=NAME`` for another first part), NAME
    the image id, or the XML's path below ROOT without its suffix.
Citation
    Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 2010 (the format);
    cite your data's source.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from rsgpt4v.converters.voc import ImageSetConverter, find_image
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record

ANNOTATIONS, IMAGES = "Annotations", "JPEGImages"
GDAL_SIDECAR = ".aux.xml"  # what QGIS and GDAL write beside an image: never an annotation


class VocConverter(ImageSetConverter):
    NAME = "voc"
    DESCRIPTION = "Any Pascal VOC XML boxes (labelImg, CVAT, Label Studio exports)."
    LAYOUT = (
        "ROOT/Annotations/*.xml + ROOT/JPEGImages/* (+ ROOT/ImageSets/Main/{split}.txt), "
        "or labelImg's SCENE.xml beside each image"
    )
    SPLITS = ("train", "val", "trainval", "test")
    OPTIONS: ClassVar[dict[str, str]] = {
        "dataset": "dataset name used in record ids (default voc)",
    }
    CITATION = "Everingham et al., The PASCAL VOC Challenge, IJCV 2010 (the format)"

    @property
    def dataset_name(self) -> str:
        return self.options.get("dataset", self.NAME)

    def _has_split_files(self) -> bool:
        folder = self.root / self.SPLIT_FOLDER
        return any((folder / f"{split}.txt").is_file() for split in self.SPLITS)

    @cached_property
    def _loose_annotations(self) -> list[tuple[str, Path]]:
        """(image id, XML) of every annotation under ROOT, for a layout without split files
        (found once: the progress-bar count and the records share the walk)."""
        if self.split not in (None, "all"):
            raise InputError(
                f"no split files in {self.SPLIT_FOLDER}, so the only split is 'all' "
                f"(asked: {self.split!r})",
                file=self.root,
            )
        found = []
        for xml in sorted(self.root.rglob("*.xml")):
            if xml.name.lower().endswith(GDAL_SIDECAR):  # GIS metadata beside a GeoTIFF
                continue
            stem = xml.relative_to(self.root).with_suffix("").as_posix()
            found.append((stem.removeprefix(f"{ANNOTATIONS}/"), xml))
        if not found:
            raise InputError(f"no split files and no *.xml; expected {self.LAYOUT}", file=self.root)
        return found

    def estimate_count(self) -> int | None:
        if self._has_split_files():
            return super().estimate_count()
        return len(self._loose_annotations)

    def records(self) -> Iterator[Record]:
        if self._has_split_files():
            yield from super().records()
            return
        for stem, xml in self._loose_annotations:
            yield from self._record("all", stem, xml, 0)

    def annotation_path(self, stem: str) -> Path | None:
        for candidate in (self.root / ANNOTATIONS / f"{stem}.xml", self.root / f"{stem}.xml"):
            if candidate.is_file():
                return candidate
        return None

    def image_path(self, stem: str, split: str, annotation: Path) -> Path:
        name = Path(stem).name
        if annotation.parent == self.root / ANNOTATIONS:
            return find_image([self.root / IMAGES, self.root], name)
        return find_image([annotation.parent, self.root / IMAGES], name)
