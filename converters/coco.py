"""COCO instance JSON: any dataset shipped as COCO (``coco``), and iSAID in its layout (``isaid``).

Dataset
    ``coco``: any detection or instance-segmentation set in the COCO format (many remote-sensing
    sets are redistributed so). ``isaid``: iSAID (Waqas Zamir et al., CVPRW 2019), instance
    masks for the 2806 DOTA v1.0 images, 655,451 instances in 15 classes, as COCO polygons.
Layout
    ``coco``: ``ROOT/annotations/instances_{split}.json`` (every split found, or ``--split``)
    with images in the first of ``ROOT/{split}/``, ``ROOT/images/{split}/``, ``ROOT/images/``;
    or ``-O annotations=FILE`` (split ``all`` or ``--split``) with ``-O images=FOLDER``, whose
    default also tries the folder that holds FILE. Both paths are relative to ROOT.
    ``-O dataset=NAME`` sets the dataset name of the record ids (default ``coco``).

    ``isaid``::

        ROOT/train/images/P0002.png (+ P0002_instance_color_RGB.png, P0002_instance_id_RGB.png)
        ROOT/train/Annotations/iSAID_train.json     or ROOT/train/iSAID_train.json
        ROOT/val/...                                the same
        ROOT/test/images/P0006.png                  no labels
        iSAID_patches/{train,val}/images/ + instancesonly_filtered_{split}.json  (devkit patches)
Quirks
    Classes are mapped by **name**, never by id: iSAID's devkit and official files number the
    same classes differently, and names are mixed-case (``Small_Vehicle``, ``plane``). See
    :mod:`rsgpt4v.converters.coco_json` for segmentation parts, RLE crowd regions (kept, in
    ``attributes``) and extra keys. Image ids need not start at 1 (the iSAID devkit starts at
    0); the source id goes to ``meta.image_id`` and other image keys (iSAID's
    ``ins_file_name``, ``seg_file_name``) to ``meta.coco``. An image whose JSON width/height
    disagree with the file is rejected (its boxes would be wrong). A file without
    ``annotations`` (COCO ``image_info_*.json``) gives unlabelled records. Record ids use
    ``file_name`` without its suffix, sub-folders included: images that share one (or an id)
    are refused together, and ids are matched exactly (``true``, ``1.0`` are not image 1), see
    :mod:`rsgpt4v.converters.coco_json`. Bad entries are named by JSON path.
Citation
    Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014. Waqas Zamir et al.,
    "iSAID: A Large-scale Dataset for Instance Segmentation in Aerial Images", CVPRW 2019.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.converters.coco_json import (
    CocoFile,
    annotation_to_object,
    image_extras,
    read_coco,
)
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import size_mismatch
from rsgpt4v.raster import RasterFacts
from rsgpt4v.schema import Object, Record

ISAID_CLASSES = (  # the official files' order (ids 1-15); the devkit numbers them differently
    "storage_tank",
    "Large_Vehicle",
    "Small_Vehicle",
    "plane",
    "ship",
    "Swimming_pool",
    "Harbor",
    "tennis_court",
    "Ground_Track_Field",
    "Soccer_ball_field",
    "baseball_diamond",
    "Bridge",
    "basketball_court",
    "Roundabout",
    "Helicopter",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class CocoSplit:
    """One split: its annotation file (None when unlabelled) and the folder its images are in."""

    split: str
    annotations: Path | None
    images: Path


class CocoJsonConverter(Converter):
    """Records from COCO files; subclasses say where the files of each split are."""

    def dataset_name(self) -> str:
        return self.NAME

    @abstractmethod
    def splits(self) -> list[CocoSplit]:
        """The splits to convert, each with its annotation file and image folder."""

    def records(self) -> Iterator[Record]:
        for unit in self.splits():
            if unit.annotations is None:
                yield from self._unlabelled_folder(unit)
                continue
            coco = read_coco(unit.annotations, partial(self._reject, unit=unit))
            for index, image in coco.images:
                yield from self._record(unit, coco, index, image)

    def _reject(self, error: InputError, unit: CocoSplit) -> None:
        file = error.file or unit.annotations or unit.images
        self.log.reject(error.reason, file, error.line, error.value, entry=error.entry)

    def _shown_path(self, path: Path) -> str:
        """An annotation file as records show it: relative to the root when it is inside."""
        return self.relative_path(path) if self.inside_root(path) else str(path)

    def _image_folder(self, relative: str) -> Path:
        """A folder option, normalised and kept inside the root (record paths are relative)."""
        folder = Path(os.path.normpath(self.root / relative))
        if not folder.is_dir():
            raise InputError("image folder not found", file=folder)
        if not self.inside_root(folder):
            raise InputError("image folder must be inside the dataset root", file=folder)
        return folder

    def _record(
        self, unit: CocoSplit, coco: CocoFile, index: int, image: dict[str, Any]
    ) -> Iterator[Record]:
        path = unit.images / image["file_name"]
        facts = self.image_facts(path, coco.path)
        if facts is None:
            return
        declared = (image.get("width", facts.width), image.get("height", facts.height))
        if reason := size_mismatch("JSON", declared, facts.width, facts.height):
            self.log.reject(
                reason,
                coco.path,
                value=image["file_name"],
                entry=f"images[{index}]",
            )
            return
        meta: dict[str, object] = {
            "labelled": coco.annotations is not None,
            "annotation_file": self._shown_path(coco.path),
            "image_id": image["id"],
        }
        if extras := image_extras(image):
            meta["coco"] = extras
        objects = self._objects(coco, image["id"], facts.width, facts.height, unit)
        entries = len(coco.annotations.get(image["id"], [])) if coco.annotations else 0
        if len(objects) < entries:  # counts from this image would be wrong
            meta["skipped_objects"] = entries - len(objects)
        if crowds := sum(1 for o in objects if o.attributes.get("iscrowd")):
            meta["crowd_regions"] = crowds
        yield self._make_record(unit, PurePosixPath(image["file_name"]), path, facts, objects, meta)

    def _objects(
        self, coco: CocoFile, image_id: object, width: int, height: int, unit: CocoSplit
    ) -> list[Object]:
        objects: list[Object] = []
        for index, annotation in (coco.annotations or {}).get(image_id, []):
            try:
                objects.append(
                    annotation_to_object(
                        annotation, index, coco.categories, width, height, len(objects)
                    )
                )
            except InputError as error:
                self._reject(error, unit)
        return objects

    def _unlabelled_folder(self, unit: CocoSplit) -> Iterator[Record]:
        """A split without annotations (iSAID test): every image, skipping iSAID's mask PNGs."""
        for path in sorted(unit.images.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or "_instance_" in path.stem:
                continue
            facts = self.image_facts(path)
            if facts is not None:
                name = PurePosixPath(path.name)
                yield self._make_record(unit, name, path, facts, [], {"labelled": False})

    def _make_record(
        self,
        unit: CocoSplit,
        name: PurePosixPath,
        path: Path,
        facts: RasterFacts,
        objects: list[Object],
        meta: dict[str, object],
    ) -> Record:
        dataset = self.dataset_name()
        return Record(
            id=f"{dataset}/{unit.split}/{name.with_suffix('')}",
            dataset=dataset,
            split=unit.split,
            image=image_info(self.relative_path(path), facts),
            objects=objects,
            meta=meta,
        )


class CocoConverter(CocoJsonConverter):
    NAME = "coco"
    DESCRIPTION = "Any COCO instance JSON (boxes, polygons, RLE crowds); classes kept by name."
    LAYOUT = (
        "ROOT/annotations/instances_{split}.json + ROOT/{split}/ | ROOT/images/{split}/ | "
        "ROOT/images/; or -O annotations=FILE -O images=FOLDER"
    )
    OPTIONS: ClassVar[dict[str, str]] = {
        "annotations": "COCO JSON file, relative to ROOT (split: --split or all)",
        "images": "folder the file_name entries are relative to, relative to ROOT",
        "dataset": "dataset name used in record ids (default coco)",
    }
    CITATION = "Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014"

    def dataset_name(self) -> str:
        return self.options.get("dataset") or self.NAME

    def splits(self) -> list[CocoSplit]:
        if "annotations" in self.options:
            path = self.root / self.options["annotations"]
            split = self.split or "all"
            return [CocoSplit(split, path, self._images_for(split, path.parent))]
        found = sorted((self.root / "annotations").glob("instances_*.json"))
        if self.split:
            found = [p for p in found if p.stem == f"instances_{self.split}"]
        if not found:
            raise InputError(
                f"no annotations/instances_{self.split or '*'}.json; expected {self.LAYOUT}",
                file=self.root,
            )
        units = []
        for path in found:
            split = path.stem.removeprefix("instances_")
            units.append(CocoSplit(split, path, self._images_for(split, None)))
        return units

    def _images_for(self, split: str, beside: Path | None) -> Path:
        if "images" in self.options:
            return self._image_folder(self.options["images"])
        candidates = [self.root / split, self.root / "images" / split, self.root / "images"]
        for candidate in [*candidates, *([beside] if beside else [])]:
            if candidate.is_dir() and self.inside_root(candidate):
                return candidate
        raise InputError(
            f"no image folder for split {split!r}: expected ROOT/{split}/, ROOT/images/{split}/ "
            "or ROOT/images/ (or -O images=FOLDER)",
            file=self.root,
        )


class IsaidConverter(CocoJsonConverter):
    NAME = "isaid"
    DESCRIPTION = "iSAID: instance polygons of 15 classes on DOTA v1.0 images (COCO JSON)."
    LAYOUT = (
        "ROOT/{train,val}/images/ + ROOT/{split}/Annotations/iSAID_{split}.json (or "
        "ROOT/{split}/iSAID_{split}.json, devkit patches: instancesonly_filtered_{split}.json); "
        "ROOT/test/images/"
    )
    SPLITS = ("train", "val", "test")
    CLASSES = ISAID_CLASSES
    CITATION = (
        "Waqas Zamir et al., iSAID: A Large-scale Dataset for Instance Segmentation in Aerial "
        "Images, CVPRW 2019"
    )
    ANNOTATION_FILES: ClassVar[tuple[str, ...]] = (
        "Annotations/iSAID_{split}.json",
        "iSAID_{split}.json",
        "instancesonly_filtered_{split}.json",
        "instance_only_filtered_{split}.json",  # the devkit README's spelling
    )

    def splits(self) -> list[CocoSplit]:
        if self.split:
            if not (self.root / self.split).is_dir():
                raise InputError(f"no split folder {self.split!r}", file=self.root)
            folders = [self.root / self.split]
        else:
            folders = [p for p in sorted(self.root.iterdir()) if p.is_dir()]
        units = []
        for folder in folders:
            images = next((folder / n for n in ("images", "Images") if (folder / n).is_dir()), None)
            if images is None:
                continue
            candidates = (folder / n.format(split=folder.name) for n in self.ANNOTATION_FILES)
            annotations = next((c for c in candidates if c.is_file()), None)
            units.append(CocoSplit(folder.name, annotations, images))
        if not units:
            raise InputError(f"no split folder with images/; expected {self.LAYOUT}", self.root)
        return units
