"""Captioning datasets: RSICD, UCM-Captions, Sydney-Captions, RSITMD and NWPU-Captions.

Dataset
    Aerial scenes with five human captions each: RSICD (Lu et al., 10,921 images),
    UCM-Captions and Sydney-Captions (Qu et al., 2,100 and 613 images), RSITMD (Yuan et al.,
    4,743 images) and NWPU-Captions (Cheng et al., the 31,500 NWPU-RESISC45 images).
Layout
    One JSON file beside an image folder::

        ROOT/dataset_rsicd.json + ROOT/RSICD_images/airport_1.jpg          RSICD
        ROOT/dataset.json + ROOT/imgs/1.tif (or images/)                   UCM / Sydney
        ROOT/dataset_RSITMD.json + ROOT/images/baseballfield_452.tif       RSITMD
        ROOT/dataset_nwpu.json + ROOT/NWPU_images/airplane/airplane_001.jpg NWPU-Captions

    The first four use the Karpathy layout, ``{"images": [{"filename", "split", "sentences":
    [{"raw", "tokens", ...}]}]}``; NWPU-Captions is an object keyed by class name whose entries
    hold ``raw``, ``raw_1`` … ``raw_4``, ``split`` and ``filename``.
Quirks
    ``tokens`` can disagree with ``raw`` (RSICD: "aircraft" vs "planes"): ``raw`` is the caption
    and tokens are ignored. Captions were copied to make up five, so duplicates within an image
    are kept once (and tallied). UCM, Sydney and NWPU write a space before the final period
    (``"… neatly ."``), which is joined. UCM/Sydney name images ``1.tif`` … (unpadded). Old
    RSITMD copies have blank ``raw`` strings, which are rejected with their JSON path. The JSON
    is read whole (a few MB at most); records are still yielded one at a time.
Citation
    Lu et al., "Exploring Models and Data for Remote Sensing Image Caption Generation", TGRS
    2018; Qu et al., "Deep semantic understanding of high resolution remote sensing image",
    CITS 2016; Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote
    Sensing Image Retrieval", TGRS 2022; Cheng et al., "NWPU-Captions Dataset and MLCA-Net for
    Remote Sensing Image Captioning", TGRS 2022.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import ClassVar

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.schema import Record

DETACHED_FINAL_MARK = re.compile(r"\s+([.!?])$")  # "… neatly ." → "… neatly."
NWPU_CAPTION_KEY = re.compile(r"raw(?:_(\d+))?")


@dataclass
class CaptionEntry:
    """One image entry of a captions JSON, with the JSON paths its problems are reported at."""

    where: str  # JSON path of the entry: "images[3]" or "airplane[3]"
    filename: object
    split: object
    captions: list[tuple[str, object]]  # (JSON path, raw value)
    folder: str = ""  # class folder between the image folder and the file name
    label: str | None = None
    meta: dict[str, object] = field(default_factory=dict)


def clean_caption(raw: str) -> str:
    """Strip the caption and join a final period that tokenisation left detached."""
    return DETACHED_FINAL_MARK.sub(r"\1", raw.strip())


class CaptionConverter(Converter):
    """A captions JSON beside an image folder → one record per image with its captions."""

    JSON_FILES: ClassVar[tuple[str, ...]]
    IMAGE_FOLDERS: ClassVar[tuple[str, ...]]
    SPLITS = ("train", "val", "test")
    OPTIONS: ClassVar[dict[str, str]] = {
        "annotations": "the captions JSON, relative to ROOT (default: found by its usual name)",
        "images": "the image folder, relative to ROOT (default: found by its usual name)",
    }

    @abstractmethod
    def entries(self, data: object) -> Iterator[CaptionEntry]:
        """The image entries of the loaded JSON; malformed entries are rejected here."""

    # -- layout -------------------------------------------------------------------------------
    @cached_property
    def annotation_file(self) -> Path:
        return self._find("annotations", self.JSON_FILES, Path.is_file, "captions JSON")

    @cached_property
    def image_folder(self) -> Path:
        return self._find("images", self.IMAGE_FOLDERS, Path.is_dir, "image folder")

    def _find(
        self, option: str, names: tuple[str, ...], exists: Callable[[Path], bool], what: str
    ) -> Path:
        """The optioned path (which must stay inside ROOT) or the first usual name present."""
        if option in self.options:
            path = self.root / self.options[option]
            if not (exists(path) and self.inside_root(path)):
                raise InputError(
                    f"option {option}: no {what} there inside the dataset root",
                    file=self.root,
                    value=self.options[option],
                )
            return path
        for name in names:
            if exists(self.root / name):
                return self.root / name
        raise InputError(
            f"no {what} ({' or '.join(names)}); expected {self.LAYOUT}, or -O {option}=PATH",
            file=self.root,
        )

    @cached_property
    def data(self) -> object:
        """The whole captions JSON, read once (a few MB for the largest, RSICD)."""
        return load_json(self.annotation_file, what="captions JSON")

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        seen: dict[str, str] = {}
        splits: set[str] = set()
        for entry in self.entries(self.data):
            if not isinstance(entry.split, str) or not entry.split.strip():
                self._reject("split must be a non-empty string", entry, "split", entry.split)
                continue
            split = entry.split.strip()
            splits.add(split)
            if self.split is not None and split != self.split:
                continue
            record = self._record(entry, split)
            if record is None:
                continue
            if record.image.path in seen:
                reason = f"image already listed at {seen[record.image.path]}"
                self._reject(reason, entry, "filename", record.image.path)
                continue
            if record.id in seen:  # another file with the same stem
                reason = f"record id {record.id} already used by {seen[record.id]}"
                self._reject(reason, entry, "filename", record.image.path)
                continue
            seen[record.id] = seen[record.image.path] = entry.where
            yield record
        if self.split is not None and self.split not in splits:
            found = ", ".join(sorted(splits)) or "none"
            raise InputError(
                f"no images with split {self.split!r}; splits in the file: {found}",
                file=self.annotation_file,
            )

    def _record(self, entry: CaptionEntry, split: str) -> Record | None:
        image = self._image_path(entry)
        if image is None:
            return None
        facts = self.image_facts(image, self.annotation_file)
        if facts is None:
            return None
        captions, skipped = self._captions(entry)
        meta = {"labelled": False, **entry.meta}  # captions only: objects were never labelled
        if skipped:  # later stages must know the captions are incomplete
            meta["skipped_captions"] = skipped
        if not captions and not skipped:
            self.log.warn(f"{entry.where} has no captions", self.annotation_file)
        stem = PurePosixPath(str(entry.filename)).stem
        return Record(
            id=f"{self.NAME}/{split}/{stem}",
            dataset=self.NAME,
            split=split,
            image=image_info(self.relative_path(image), facts),
            captions=captions,
            label=entry.label,
            meta=meta,
        )

    def _image_path(self, entry: CaptionEntry) -> Path | None:
        """The image file of an entry; a bad name or a missing file is rejected with its path."""
        name = entry.filename
        if not isinstance(name, str) or not name.strip():
            self._reject("filename must be a non-empty string", entry, "filename", name)
            return None
        relative = PurePosixPath(entry.folder, name.strip())
        if relative.is_absolute() or ".." in relative.parts:
            self._reject("filename must stay inside the image folder", entry, "filename", name)
            return None
        path = self.image_folder / relative
        if not path.is_file():
            count = len(entry.captions)
            reason = f"image not found; its {count} captions are left out"
            self._reject(reason, entry, "filename", self.relative_path(path))
            return None
        return path

    def _captions(self, entry: CaptionEntry) -> tuple[list[str], int]:
        """Cleaned, distinct captions in source order, and how many were rejected."""
        kept: list[str] = []
        skipped = 0
        for where, raw in entry.captions:
            if not isinstance(raw, str):
                reason = "caption is missing or not a string"
                self.log.reject(reason, self.annotation_file, value=raw, entry=where)
                skipped += 1
                continue
            text = clean_caption(raw)
            if not text:
                self.log.reject("blank caption", self.annotation_file, value=raw, entry=where)
                skipped += 1
                continue
            if text != raw.strip():
                self.log.count("captions with a detached final period joined")
            kept.append(text)
        distinct = list(dict.fromkeys(kept))
        if len(distinct) < len(kept):
            self.log.count("duplicate captions removed", len(kept) - len(distinct))
        return distinct, skipped

    def _reject(self, reason: str, entry: CaptionEntry, key: str, value: object = None) -> None:
        where = f"{entry.where}.{key}"
        self.log.reject(reason, self.annotation_file, value=value, entry=where)


class KarpathyCaptionConverter(CaptionConverter):
    """``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}``; other keys ignored."""

    def estimate_count(self) -> int | None:
        images = self.data.get("images") if isinstance(self.data, dict) else None
        return len(images) if isinstance(images, list) else None

    def entries(self, data: object) -> Iterator[CaptionEntry]:
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list):
            raise InputError(
                'expected a Karpathy-style object with an "images" list',
                file=self.annotation_file,
                value=type(images or data).__name__,
            )
        for index, item in enumerate(images):
            where = f"images[{index}]"
            if not isinstance(item, dict):
                reason = "image entry is not an object"
                self.log.reject(reason, self.annotation_file, value=item, entry=where)
                continue
            sentences = item.get("sentences")
            if not isinstance(sentences, list):
                self.log.reject(
                    "sentences must be a list",
                    self.annotation_file,
                    value=sentences,
                    entry=f"{where}.sentences",
                )
                continue
            yield CaptionEntry(
                where=where,
                filename=item.get("filename"),
                split=item.get("split"),
                captions=[_raw_of(s, f"{where}.sentences[{j}]") for j, s in enumerate(sentences)],
                meta={"imgid": item["imgid"]} if "imgid" in item else {},
            )


def _raw_of(sentence: object, where: str) -> tuple[str, object]:
    """(JSON path, caption) of a Karpathy sentence; a non-object sentence is its own value."""
    if isinstance(sentence, dict):
        return f"{where}.raw", sentence.get("raw")
    return where, sentence


class RsicdConverter(KarpathyCaptionConverter):
    NAME = "rsicd"
    DESCRIPTION = "RSICD captions (Karpathy JSON, 5 captions per 224x224 image)."
    LAYOUT = "ROOT/dataset_rsicd.json + ROOT/RSICD_images/*.jpg"
    JSON_FILES = ("dataset_rsicd.json",)
    IMAGE_FOLDERS = ("RSICD_images", "images")
    CITATION = (
        "Lu et al., Exploring Models and Data for Remote Sensing Image Caption Generation, "
        "TGRS 2018"
    )


class UcmCaptionsConverter(KarpathyCaptionConverter):
    NAME = "ucm-captions"
    DESCRIPTION = "UCM-Captions (Karpathy JSON, images 1.tif ... 2100.tif)."
    LAYOUT = "ROOT/dataset.json + ROOT/imgs/N.tif (or images/)"
    JSON_FILES = ("dataset.json", "dataset_ucm.json")
    IMAGE_FOLDERS = ("imgs", "images")
    CITATION = (
        "Qu et al., Deep semantic understanding of high resolution remote sensing image, CITS 2016"
    )


class SydneyCaptionsConverter(UcmCaptionsConverter):
    NAME = "sydney-captions"
    DESCRIPTION = "Sydney-Captions (Karpathy JSON, images 1.tif ... 613.tif)."
    JSON_FILES = ("dataset.json", "dataset_sydney.json")


class RsitmdConverter(KarpathyCaptionConverter):
    NAME = "rsitmd"
    DESCRIPTION = "RSITMD captions (Karpathy JSON; blank captions of old copies are rejected)."
    LAYOUT = "ROOT/dataset_RSITMD.json + ROOT/images/*.tif"
    JSON_FILES = ("dataset_RSITMD.json", "dataset_rsitmd.json")
    IMAGE_FOLDERS = ("images",)
    CITATION = (
        "Yuan et al., Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing "
        "Image Retrieval, TGRS 2022"
    )


class NwpuCaptionsConverter(CaptionConverter):
    """``{"<class>": [{"filename", "split", "raw", "raw_1", …}]}``; the class is the label."""

    NAME = "nwpu-captions"
    DESCRIPTION = "NWPU-Captions (JSON keyed by class, raw..raw_4); the class becomes the label."
    LAYOUT = "ROOT/dataset_nwpu.json + ROOT/NWPU_images/<class>/<class>_NNN.jpg"
    JSON_FILES = ("dataset_nwpu.json",)
    IMAGE_FOLDERS = ("NWPU_images", "NWPU-RESISC45", "images")
    CITATION = (
        "Cheng et al., NWPU-Captions Dataset and MLCA-Net for Remote Sensing Image Captioning, "
        "TGRS 2022"
    )

    def estimate_count(self) -> int | None:
        if not isinstance(self.data, dict):
            return None
        return sum(len(items) for items in self.data.values() if isinstance(items, list))

    def entries(self, data: object) -> Iterator[CaptionEntry]:
        if not isinstance(data, dict):
            raise InputError(
                "expected an object keyed by class name",
                file=self.annotation_file,
                value=type(data).__name__,
            )
        for label, items in data.items():
            if not isinstance(items, list):
                self.log.reject(
                    "class entry is not a list", self.annotation_file, value=items, entry=label
                )
                continue
            for index, item in enumerate(items):
                where = f"{label}[{index}]"
                if not isinstance(item, dict):
                    self.log.reject(
                        "image entry is not an object",
                        self.annotation_file,
                        value=item,
                        entry=where,
                    )
                    continue
                yield CaptionEntry(
                    where=where,
                    filename=item.get("filename"),
                    split=item.get("split"),
                    captions=[(f"{where}.{key}", item[key]) for key in _caption_keys(item)],
                    folder=label,
                    label=label,
                    meta={"imgid": item["imgid"]} if "imgid" in item else {},
                )


def _caption_keys(item: dict[str, object]) -> list[str]:
    """``raw``, ``raw_1``, ``raw_2`` … in numeric order (``raw_10`` after ``raw_9``)."""
    numbered = [(m.group(1), key) for key in item if (m := NWPU_CAPTION_KEY.fullmatch(key))]
    return [key for number, key in sorted(numbered, key=lambda n: int(n[0] or 0))]
