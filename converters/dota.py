"""DOTA v1.0 / v1.5 / v2.0: large aerial scenes with oriented (OBB) or horizontal (HBB) boxes.

Dataset
    DOTA (Xia et al., CVPR 2018; Ding et al., TPAMI 2021): 2806 (v1.0/v1.5) to 11268 (v2.0)
    aerial images from 800 to 20000 px, objects labelled with four-corner polygons.
Layout
    Either the devkit layout ``ROOT/images/*.png`` + ``ROOT/labelTxt/*.txt``, or the
    distributed one, one folder per split::

        ROOT/train/images/[partN/]P0000.png
        ROOT/train/labelTxt-v1.0/labelTxt/P0000.txt                 v1.0 OBB
        ROOT/train/labelTxt-v1.0/trainset_reclabelTxt/P0000.txt     v1.0 HBB
        ROOT/train/labelTxt-v1.5/DOTA-v1.5_train[_hbb]/P0000.txt    v1.5
        ROOT/train/labelTxt-v2.0/DOTA-v2.0_train[_hbb]/P0000.txt    v2.0
        ROOT/train/meta/P0000.txt                                   v2.0 metadata
        ROOT/test/images/...                                        no labels
Quirks
    CRLF line endings; ``imagesource:``/``gsd:`` header lines in v1.x (recognised by content,
    not position) and none in v2.0, whose metadata sits in ``meta/`` with ``acquisition
    dates:``; ``gsd:null`` / ``gsd:None``; integer or float coordinates; polygons reaching
    past the image edge (the box is clipped, the polygon kept); difficult 0/1 (2 from split
    tools, kept as difficult with ``truncated``); label files with no objects.
Citation
    Xia et al., "DOTA: A Large-scale Dataset for Object Detection in Aerial Images", CVPR 2018.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.converters.base import Converter
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import polygons_to_clipped_bboxes
from rsgpt4v.schema import ImageInfo, Object, Record, trusted_object

DOTA_V10_CLASSES = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
DOTA_V15_CLASSES = (*DOTA_V10_CLASSES, "container-crane")
DOTA_V20_CLASSES = (*DOTA_V15_CLASSES, "airport", "helipad")
# Crowded small classes whose labels miss instances at every size (rsgpt4v.completeness)
DOTA_DENSE_CLASSES = frozenset({"small-vehicle", "large-vehicle", "ship"})
DOTA_COMPLETENESS = (
    "DOTA v1.0 read by eye on the real scenes P0706 and P1888: 51 buses visible where 50 are "
    "labelled, at least 17 cars where 14 are, whole car parks and moored boats unlabelled; the "
    "instances under about 10 px that v1.0 left out and v1.5 added (its release notes) are of "
    "these classes too"
)

DIFFICULT_FLAGS = ("0", "1", "2")  # 2 is written by split tools for small remnants
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DEVKIT_LABELS = "labelTxt"  # ROOT/images + ROOT/labelTxt: the version is not in the folder names
SMALLEST_PLAUSIBLE_GSD = 1e-3  # metres; some v1.0 headers carry 1.34e-06, which is not a GSD


def _label_folders(version: str, split: str, kind: str) -> list[str]:
    """Candidate label folders inside one split folder, most specific first."""
    hbb = kind == "hbb"
    folders = {
        "1.0": [
            f"labelTxt-v1.0/{split}set_reclabelTxt",
            f"labelTxt-v1.0/Train_Task2_gt/{split}set_reclabelTxt",
            f"Train_Task2_gt/{split}set_reclabelTxt",
            f"{split}set_reclabelTxt",
        ]
        if hbb
        else ["labelTxt-v1.0/labelTxt"],
        "1.5": [f"labelTxt-v1.5/DOTA-v1.5_{split}" + ("_hbb" if hbb else "")],
        "2.0": [f"labelTxt-v2.0/DOTA-v2.0_{split}" + ("_hbb" if hbb else "")],
    }
    return folders[version] + ([] if hbb else [DEVKIT_LABELS])


@dataclass
class LabelFile:
    """A parsed label file, column-wise: one entry per object line, in file order."""

    header: dict[str, str] = field(default_factory=dict)
    line_numbers: list[int] = field(default_factory=list)
    corners: np.ndarray = field(default_factory=lambda: np.empty((0, 4, 2)))
    categories: list[str] = field(default_factory=list)
    difficult: list[str] = field(default_factory=list)
    bad_lines: list[tuple[int, str, str]] = field(default_factory=list)


NOT_AN_OBJECT_LINE = "not a DOTA object line (8 coordinates, a category and a difficult flag)"


def parse_dota_label(text: str) -> LabelFile:
    """Parse label text of any DOTA version; header lines are recognised by content.

    An object line has 8 numbers, a category and an optional difficult flag (the devkit accepts
    9 tokens). A ``key:value`` line is metadata. Anything else is a bad line, kept with its
    number so the caller can report it. Coordinates of the whole file are converted in one numpy
    call; only a file with a bad number is parsed again line by line to find it.
    """
    parsed = LabelFile()
    object_lines: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        count = len(tokens)
        if count == 10 or count == 9:
            object_lines.append(raw)
            parsed.line_numbers.append(number)
            parsed.categories.append(tokens[8])
            parsed.difficult.append(tokens[9] if count == 10 else "0")
        elif not tokens:
            continue
        elif ":" in raw:
            key, _, value = raw.partition(":")
            parsed.header[key.strip()] = value.strip()
        else:
            parsed.bad_lines.append((number, raw.strip(), NOT_AN_OBJECT_LINE))
    corners = _corners(object_lines)
    good = np.isfinite(corners).all(axis=1)
    if not good.all():  # lines with a bad number move to bad_lines
        for raw, number, ok in zip(object_lines, parsed.line_numbers, good, strict=True):
            if not ok:
                parsed.bad_lines.append((number, raw.strip(), NOT_AN_OBJECT_LINE))
        parsed.line_numbers = list(itertools.compress(parsed.line_numbers, good))
        parsed.categories = list(itertools.compress(parsed.categories, good))
        parsed.difficult = list(itertools.compress(parsed.difficult, good))
    parsed.corners = corners[good].reshape(-1, 4, 2)
    parsed.bad_lines.sort()
    return parsed


def _corners(lines: list[str]) -> np.ndarray:
    """(N, 8) floats from the first 8 tokens of each line; a row with a non-number becomes NaN.

    ``np.loadtxt`` splits on the same whitespace as ``str.split`` and converts in C with the
    parser ``float()`` uses, so its values are those of ``float()``. It refuses a little that
    ``float()`` accepts (``1_000``, non-ASCII digits): then every row goes through ``float()``.
    """
    if not lines:
        return np.empty((0, 8))
    try:
        return np.loadtxt(lines, usecols=range(8), comments=None, ndmin=2)
    except ValueError:
        return np.array([_float_row(line.split()[:8]) for line in lines], dtype=float)


def _float_row(tokens: list[str]) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        return [math.nan] * 8


def _image_files(split_folder: Path) -> list[Path]:
    """Every image under ``images/`` (v2.0 nests them in ``partN/``), skipping ``Thumbs``."""
    return [
        path
        for path in sorted((split_folder / "images").rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem != "Thumbs"
    ]


def parse_gsd(text: str | None) -> float | None:
    """``float()``, falling back to None for ``null``, ``None`` and implausible values."""
    try:
        gsd = float(text) if text is not None else None
    except ValueError:
        return None
    if gsd is None or not math.isfinite(gsd) or gsd < SMALLEST_PLAUSIBLE_GSD:
        return None
    return gsd


class DotaConverter(Converter):
    NAME = "dota"
    DESCRIPTION = "DOTA aerial scenes, OBB/HBB labels; version detected from the label folders."
    LAYOUT = (
        "ROOT/{train,val,test}/images/ + labelTxt-v1.0/labelTxt | labelTxt-v1.5/DOTA-v1.5_SPLIT"
        " | labelTxt-v2.0/DOTA-v2.0_SPLIT (+ meta/), or ROOT/images/ + ROOT/labelTxt/"
    )
    SPLITS = ("train", "val", "test", "test-dev", "test-challenge")
    CLASSES = DOTA_V20_CLASSES
    OPTIONS: ClassVar[dict[str, str]] = {
        "labels": "obb or hbb: which label folder to read (default obb; hbb when only HBB exists)"
    }
    CITATION = (
        "Xia et al., DOTA: A Large-scale Dataset for Object Detection in Aerial Images, CVPR 2018"
    )
    VERSIONS: ClassVar[tuple[str, ...]] = ("2.0", "1.5", "1.0")
    COMPLETENESS = LabelCompleteness(DOTA_DENSE_CLASSES, source=DOTA_COMPLETENESS)

    def __init__(self, root: str | Path, **kwargs: object) -> None:
        super().__init__(root, **kwargs)  # type: ignore[arg-type]
        self.kind = self.options.get("labels", "obb")
        if self.kind not in ("obb", "hbb"):
            raise InputError("option labels must be obb or hbb", value=self.kind)

    # -- layout -------------------------------------------------------------------------------
    def split_folders(self) -> list[tuple[str, Path]]:
        """(split name, folder) pairs: the split folders present, or the root itself."""
        if (self.root / "images").is_dir():
            return [(self.split or "all", self.root)]
        names = (
            [self.split]
            if self.split
            else [p.name for p in sorted(self.root.iterdir()) if (p / "images").is_dir()]
        )
        if self.split and not (self.root / self.split / "images").is_dir():
            raise InputError(
                f"no split folder {self.split!r} with an images/ folder", file=self.root
            )
        if not names:
            raise InputError(
                f"no images/ folder and no split folders; expected {self.LAYOUT}", file=self.root
            )
        return [(name, self.root / name) for name in names]

    def find_labels(self, split: str, folder: Path) -> tuple[str, str, Path] | None:
        """(version, kind, label folder) of a split, the asked kind first; None if unlabelled."""
        kinds = (self.kind, "hbb" if self.kind == "obb" else "obb")
        for kind in kinds:
            for version in self.VERSIONS:
                for candidate in _label_folders(version, split, kind):
                    if (folder / candidate).is_dir():
                        return version, kind, folder / candidate
        return None

    def dataset_name(self, found: tuple[str, str, Path] | None, folder: Path) -> str:
        """``dota-vX`` when the folders (or the converter) say which version, else ``dota``."""
        if len(self.VERSIONS) == 1:
            return f"dota-v{self.VERSIONS[0]}"
        if found is None or found[2] == folder / DEVKIT_LABELS:
            return "dota"
        return f"dota-v{found[0]}"

    def estimate_count(self) -> int | None:
        return sum(len(_image_files(folder)) for _, folder in self.split_folders())

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        for split in self.work_units():
            yield from self.unit_records(split)

    def work_units(self) -> list[str]:
        """The split folders (train, val, test): parts converted independently, in order
        (:class:`rsgpt4v.convert.SplitConverter`, for the Ray engine)."""
        return [split for split, _ in self.split_folders()]

    def unit_records(self, unit: str) -> Iterator[Record]:
        folder = dict(self.split_folders())[unit]
        found = self.find_labels(unit, folder)
        dataset = self.dataset_name(found, folder) if found else self._unlabelled_dataset_name()
        yield from self._split_records(dataset, unit, folder, found)

    def _unlabelled_dataset_name(self) -> str:
        """Unlabelled splits (test) take the version of the labelled splits beside them."""
        folders = (
            [self.root]
            if (self.root / "images").is_dir()
            else [p for p in sorted(self.root.iterdir()) if (p / "images").is_dir()]
        )
        names = {
            self.dataset_name(found, folder)
            for folder in folders
            if (found := self.find_labels(folder.name, folder))
        }
        return names.pop() if len(names) == 1 else self.dataset_name(None, self.root)

    def _split_records(
        self, dataset: str, split: str, folder: Path, found: tuple[str, str, Path] | None
    ) -> Iterator[Record]:
        images = self._image_index(folder)
        if found is None:
            for stem in sorted(images):
                yield from self._record(dataset, split, images[stem], None, folder)
            return
        _version, kind, labels = found
        labelled: set[str] = set()
        for label_path in sorted(labels.glob("*.txt")):
            stem = label_path.stem
            labelled.add(stem)
            if stem not in images:
                self.log.reject("label file has no image", label_path, value=stem)
                continue
            if not self.inside_root(label_path):
                self.log.reject("label file resolves outside the dataset root", label_path)
                continue
            yield from self._labelled_record(dataset, split, images[stem], label_path, kind, folder)
        for stem in sorted(set(images) - labelled):
            self.log.warn("image has no label file; kept as an unlabelled record", images[stem])
            yield from self._record(dataset, split, images[stem], None, folder)

    def _image_index(self, folder: Path) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for path in _image_files(folder):
            if not self.inside_root(path):
                self.log.reject("image resolves outside the dataset root", path)
                continue
            if path.stem in index:
                self.log.reject(
                    f"two images share the id {path.stem}", path, value=index[path.stem]
                )
                continue
            index[path.stem] = path
        return index

    def _labelled_record(
        self, dataset: str, split: str, image: Path, label_path: Path, kind: str, folder: Path
    ) -> Iterator[Record]:
        try:
            text = label_path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            self.log.reject(f"label file is not UTF-8 text ({error.reason})", label_path)
            return
        parsed = parse_dota_label(text)
        for number, line, reason in parsed.bad_lines:
            self.log.reject(reason, label_path, number, line)
        meta_file = folder / "meta" / f"{label_path.stem}.txt"
        if meta_file.is_file():
            parsed.header = {
                **parse_dota_label(meta_file.read_text("utf-8-sig")).header,
                **parsed.header,
            }
        yield from self._record(dataset, split, image, (label_path, parsed, kind), folder)

    def _record(
        self,
        dataset: str,
        split: str,
        image: Path,
        labels: tuple[Path, LabelFile, str] | None,
        folder: Path,
    ) -> Iterator[Record]:
        facts = self.image_facts(image, labels[0] if labels else None)
        if facts is None:
            return
        meta: dict[str, object] = {"labelled": labels is not None}
        header_gsd = None
        objects: list[Object] = []
        if labels is not None:
            label_path, parsed, kind = labels
            meta["label_file"] = self.relative_path(label_path)
            meta.update({k: v for k, v in parsed.header.items() if k != "gsd"})
            header_gsd = parse_gsd(parsed.header.get("gsd"))
            if "gsd" in parsed.header and header_gsd is None:
                meta["gsd_raw"] = parsed.header["gsd"]
            objects = self._objects(parsed, label_path, kind, facts.width, facts.height)
            unreadable = len(parsed.bad_lines) + sum(
                d not in DIFFICULT_FLAGS for d in parsed.difficult
            )
            if unreadable:  # counts from this image would be wrong: later stages must know
                meta["skipped_objects"] = unreadable
        yield Record(
            id=f"{dataset}/{split}/{image.stem}",
            dataset=dataset,
            split=split,
            image=ImageInfo(
                path=self.relative_path(image),
                width=facts.width,
                height=facts.height,
                bands=facts.bands,
                gsd=header_gsd or facts.gsd,
                crs=facts.crs,
                transform=facts.transform,
            ),
            objects=objects,
            meta=meta,
        )

    def _objects(
        self, parsed: LabelFile, label_path: Path, kind: str, width: int, height: int
    ) -> list[Object]:
        """Objects of one label file; boxes are clipped for the whole file in one numpy call."""
        boxes = polygons_to_clipped_bboxes(parsed.corners, width, height)
        corners, categories, difficult = parsed.corners, parsed.categories, parsed.difficult
        inside = ~np.isnan(boxes[:, 2])  # NaN: nothing of the object inside the image
        if not (inside.all() and set(difficult) <= set(DIFFICULT_FLAGS)):
            keep = self._reject_objects(parsed, label_path, inside, width, height)
            boxes, corners = boxes[keep], corners[keep]
            categories = list(itertools.compress(categories, keep))
            difficult = list(itertools.compress(difficult, keep))
        polygons = corners.tolist() if kind == "obb" else [None] * len(categories)
        rows = zip(categories, difficult, boxes.tolist(), polygons, strict=True)
        return [  # parsed and clipped above: no per-object validation (hot path)
            trusted_object(
                id=index,
                category=category,
                bbox=bbox,
                polygon=polygon,
                difficult=flag != "0",
                attributes={"truncated": True} if flag == "2" else {},
            )
            for index, (category, flag, bbox, polygon) in enumerate(rows)
        ]

    def _reject_objects(
        self, parsed: LabelFile, label_path: Path, inside: np.ndarray, width: int, height: int
    ) -> np.ndarray:
        """Report objects with a bad difficult flag or outside the image, in line order.

        Returns the mask of the objects to keep.
        """
        flag_ok = np.array([flag in DIFFICULT_FLAGS for flag in parsed.difficult], dtype=bool)
        keep = flag_ok & inside
        for index in np.flatnonzero(~keep).tolist():
            number = parsed.line_numbers[index]
            if not flag_ok[index]:
                flag = parsed.difficult[index]
                self.log.reject("difficult flag must be 0, 1 or 2", label_path, number, flag)
            else:
                reason = f"object lies outside the {width}x{height} image or has no area"
                self.log.reject(reason, label_path, number, parsed.corners[index].tolist())
        return keep


class DotaV10Converter(DotaConverter):
    NAME = "dota-v1.0"
    DESCRIPTION = "DOTA v1.0 (15 classes), labelTxt-v1.0 OBB or HBB labels."
    CLASSES = DOTA_V10_CLASSES
    VERSIONS = ("1.0",)


class DotaV15Converter(DotaConverter):
    NAME = "dota-v1.5"
    DESCRIPTION = "DOTA v1.5 (16 classes, adds container-crane and tiny instances)."
    CLASSES = DOTA_V15_CLASSES
    VERSIONS = ("1.5",)


class DotaV20Converter(DotaConverter):
    NAME = "dota-v2.0"
    DESCRIPTION = "DOTA v2.0 (18 classes, adds airport and helipad); metadata in meta/."
    CLASSES = DOTA_V20_CLASSES
    VERSIONS = ("2.0",)
