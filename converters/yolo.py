"""Ultralytics YOLO datasets: a ``data.yaml``, images, and one text file of normalised labels each.

Dataset
    The layout of Ultralytics YOLO (v5 to v11) and of the labelling tools that export to it
    (Roboflow, CVAT, Label Studio): how many users keep their own detection labels, and how
    Ultralytics ships DOTA-v1 (YOLO-OBB), VisDrone and xView.
Layout
    ``ROOT/data.yaml`` (``-O yaml=FILE`` for another) with ``names`` (a list, or an
    ``{id: name}`` mapping) and the splits ``train``, ``val``, ``test``: each a folder of images,
    a ``.txt`` file listing image paths, or a list of those, relative to the YAML's ``path``
    (when it lies inside ROOT) or else to ROOT. Each image's labels are in the parallel
    ``labels`` folder, as Ultralytics finds them: the last ``/images/`` of the image path becomes
    ``/labels/`` and the suffix ``.txt`` (an image outside any ``images`` folder has its labels
    beside it).
Quirks
    One object per line, ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 …`` (a polygon: four
    corners for YOLO-OBB, more for a segment), coordinates normalised to 0-1 by the image's
    width and height; kept as the box and the polygon in pixels. An empty label file is an image
    without objects. A missing one is kept unlabelled (``meta.labelled: false``, counted):
    Ultralytics trains on it as background, but nothing says its objects were looked for, so no
    rule asks a negative question about it. Rejected with file and line: a class id not in
    ``names``, an odd number of coordinates, fewer than three polygon points, non-numeric or
    non-finite values, coordinates far above 1 (pixel coordinates written unnormalised), boxes
    outside the image, a line that repeats an earlier one (the same class and numbers: a tool
    glitch that would count the object twice); a split file line whose image is missing. A
    split file line or a ``path`` outside ROOT is refused. Record ids are ``yolo/SPLIT/NAME``,
    NAME the image path without ``images/SPLIT/`` and suffix
    (``images/train/part2/b.png`` → ``yolo/train/part2/b``).
Citation
    Jocher et al., Ultralytics YOLO (github.com/ultralytics/ultralytics); cite your data's source.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, NamedTuple

import yaml

from rsgpt4v.converters.base import Converter
from rsgpt4v.converters.voc import (
    IMAGE_SUFFIXES,
    SourceObject,
    duplicate_line,
    image_info,
    label_lines,
    read_label_text,
    read_line_labels,
)
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record

SPLITS = ("train", "val", "test")


class Listed(NamedTuple):
    """Where a split file lists an image: reported when the image is not there."""

    file: Path
    line: int
    value: str


PIXEL_DECIMALS = 6
NORMALISED_LIMIT = 1.5  # a coordinate above this is in pixels, not a fraction of the image


def parse_yolo_labels(
    text: str, names: dict[int, str], width: int, height: int
) -> tuple[list[SourceObject], list[tuple[int, str, str]]]:
    """Objects in pixels and bad lines ``(line number, line, reason)`` of one label file."""
    objects: list[SourceObject] = []
    bad: list[tuple[int, str, str]] = []
    seen: dict[tuple[int, tuple[float, ...]], int] = {}  # object → the line that gave it first
    for number, line in label_lines(text):
        fields = line.split()
        try:
            class_id = int(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            bad.append((number, line, "not 'class x y …': a class id and numbers"))
            continue
        reason = _bad_values(class_id, values, names)
        if reason:
            bad.append((number, line, reason))
            continue
        first = seen.setdefault((class_id, tuple(values)), number)
        if first != number:  # a tool glitch: counted twice, "how many" answers would be wrong
            bad.append((number, line, duplicate_line(first)))
            continue
        category = names[class_id]
        if len(values) == 4:
            cx, cy, w, h = values
            corners = ((cx - w / 2, cy - h / 2), (cx + w / 2, cy + h / 2))
            (x0, y0), (x1, y1) = (_pixel(x, y, width, height) for x, y in corners)
            objects.append(SourceObject(category=category, box=(x0, y0, x1, y1), line=number))
        else:
            pairs = zip(values[::2], values[1::2], strict=True)
            points = [_pixel(x, y, width, height) for x, y in pairs]
            objects.append(SourceObject(category=category, polygon=points, line=number))
    return objects, bad


def _pixel(x: float, y: float, width: int, height: int) -> list[float]:
    """A normalised point in pixels, to 6 decimals (the labels' own precision, without the
    float noise of the product: 0.55 x 200 is 110, not 110.00000000000001)."""
    return [round(x * width, PIXEL_DECIMALS), round(y * height, PIXEL_DECIMALS)]


def _bad_values(class_id: int, values: list[float], names: dict[int, str]) -> str | None:
    if class_id not in names:
        return f"class id {class_id} is not in the names of the YAML (0 to {len(names) - 1})"
    if not all(math.isfinite(v) for v in values):
        return "coordinates must be finite numbers"
    if len(values) != 4 and (len(values) % 2 or len(values) < 6):
        return "expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 …'"
    if len(values) == 4 and (values[2] <= 0 or values[3] <= 0):
        return "box width and height must be positive"
    if max(values) > NORMALISED_LIMIT:
        return (
            f"coordinates must be fractions of the image size (0 to 1), got {max(values):g}: "
            "pixel coordinates?"
        )
    return None


def label_path_of(image: Path) -> Path:
    """Where Ultralytics looks for an image's labels: ``…/images/…`` → ``…/labels/….txt``."""
    parts = list(image.parts)
    if "images" in parts[:-1]:
        index = len(parts) - 2 - parts[-2::-1].index("images")
        parts[index] = "labels"
    return Path(*parts).with_suffix(".txt")


class YoloConverter(Converter):
    NAME = "yolo"
    DESCRIPTION = (
        "Ultralytics YOLO datasets (Roboflow, CVAT exports): data.yaml + normalised boxes, "
        "oriented boxes (YOLO-OBB) or polygons."
    )
    LAYOUT = (
        "ROOT/data.yaml (names; train/val/test: image folders or .txt lists) + "
        "images/SPLIT/*.jpg with labels/SPLIT/*.txt beside them"
    )
    SPLITS = SPLITS
    OPTIONS: ClassVar[dict[str, str]] = {
        "yaml": "the dataset YAML, relative to ROOT (default data.yaml, else the only *.yaml)",
        "dataset": "dataset name used in record ids (default yolo)",
    }
    CITATION = "Jocher et al., Ultralytics YOLO; cite your data's source"

    def __init__(self, root: str | Path, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.yaml_path = self._find_yaml()
        config = self._read_yaml()
        self.names = self._names(config)
        self.base = self._base(config)
        self.split_entries = {s: config[s] for s in SPLITS if config.get(s)}
        self.dataset = self.options.get("dataset", self.NAME)
        self._images: dict[str, list[tuple[Path, Listed | None]]] = {}

    def _find_yaml(self) -> Path:
        wanted = self.options.get("yaml")
        if wanted is not None:
            path = self.root / wanted
        elif (self.root / "data.yaml").is_file():
            path = self.root / "data.yaml"
        else:
            found = sorted(self.root.glob("*.yaml")) + sorted(self.root.glob("*.yml"))
            if len(found) != 1:
                listed = ", ".join(p.name for p in found) or "none"
                raise InputError(
                    f"no data.yaml; name the dataset YAML with -O yaml=FILE (YAML files: {listed})",
                    file=self.root,
                )
            path = found[0]
        if not path.is_file() or not self.inside_root(path):
            raise InputError("dataset YAML not found inside the dataset root", file=path)
        return path

    def _read_yaml(self) -> dict:
        try:
            config = yaml.safe_load(read_label_text(self.yaml_path))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise InputError(f"not valid YAML: {error}", file=self.yaml_path, line=line) from None
        if not isinstance(config, dict):
            raise InputError("the dataset YAML must be a mapping", file=self.yaml_path)
        return config

    def _names(self, config: dict) -> dict[int, str]:
        names = config.get("names")
        if isinstance(names, list):
            names = dict(enumerate(names))
        if not isinstance(names, dict) or not names:
            raise InputError(
                "the dataset YAML has no 'names' (a list of class names, or id: name)",
                file=self.yaml_path,
                value=names,
            )
        try:
            parsed = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise InputError(
                "'names' keys must be class ids (integers)", file=self.yaml_path, value=names
            ) from None
        count = config.get("nc")
        if count is not None and count != len(parsed):
            raise InputError(
                f"'nc' is {count} but 'names' lists {len(parsed)} classes", file=self.yaml_path
            )
        return parsed

    def _base(self, config: dict) -> Path:
        """The folder split entries are relative to: ``path`` when it lies inside ROOT."""
        declared = config.get("path")
        if declared:
            base = Path(os.path.normpath(self.yaml_path.parent.absolute() / str(declared)))
            if base.is_dir() and self.inside_root(base):
                return base
            self.log.warn(
                f"'path: {declared}' is not a folder inside the dataset root; split folders are "
                "taken relative to the root",
                self.yaml_path,
            )
        return self.root.absolute()

    def splits(self) -> list[str]:
        present = list(self.split_entries)
        if self.split is not None:
            if self.split not in present:
                found = ", ".join(present) or "none"
                raise InputError(
                    f"the dataset YAML names no split {self.split!r} (found: {found})",
                    file=self.yaml_path,
                )
            return [self.split]
        if not present:
            raise InputError(
                "the dataset YAML names no train, val or test split", file=self.yaml_path
            )
        return present

    def images(self, split: str) -> list[tuple[Path, Listed | None]]:
        """The split's images, in the order its entries list them (folders sorted), each with
        the split file line that lists it. Read once: a bad line is reported once."""
        if split not in self._images:
            self._images[split] = self._find_images(split)
        return self._images[split]

    def _find_images(self, split: str) -> list[tuple[Path, Listed | None]]:
        entries = self.split_entries[split]
        found: dict[Path, Listed | None] = {}
        for entry in entries if isinstance(entries, list) else [entries]:
            path = Path(os.path.normpath(self.base / str(entry)))
            if not self.inside_root(path):
                raise InputError(
                    f"split {split!r} entry resolves outside the dataset root",
                    file=self.yaml_path,
                    value=entry,
                )
            if path.is_dir():
                for image in sorted(path.rglob("*")):
                    if image.suffix.lower() in IMAGE_SUFFIXES:
                        found.setdefault(image, None)
            elif path.is_file() and path.suffix.lower() == ".txt":
                for image, listed in self._listed(path):
                    found.setdefault(image, listed)
            else:
                raise InputError(
                    f"split {split!r}: no such image folder or .txt list",
                    file=self.yaml_path,
                    value=entry,
                )
        return list(found.items())

    def _listed(self, listing: Path) -> Iterator[tuple[Path, Listed]]:
        """Image paths of a split file: one per line, relative to the file's folder."""
        for number, line in label_lines(read_label_text(listing)):
            path = Path(os.path.normpath(listing.parent / line))
            if not self.inside_root(path):
                self.log.reject("image resolves outside the dataset root", listing, number, line)
            else:
                yield path, Listed(listing, number, line)

    def estimate_count(self) -> int | None:
        return sum(len(self.images(split)) for split in self.splits())

    def records(self) -> Iterator[Record]:
        for split in self.splits():
            for image, listed in self.images(split):
                if listed is not None and not image.is_file():
                    self.log.reject("listed image not found", *listed)
                    continue
                yield from self._record(split, image)
        missing = self.log.counts.get("images without a label file (kept unlabelled)", 0)
        if missing:
            self.log.warn(
                f"{missing} images have no label file: kept unlabelled (no negative questions)",
                self.yaml_path,
            )

    def _record(self, split: str, image: Path) -> Iterator[Record]:
        label = label_path_of(image)
        facts = self.image_facts(image)
        if facts is None:
            return
        meta: dict[str, object] = {"labelled": label.is_file()}
        objects = []
        if label.is_file():
            if not self.inside_root(label):
                self.log.reject("label file resolves outside the dataset root", label)
                return
            meta["label_file"] = Path(os.path.relpath(label, self.root.absolute())).as_posix()
            width, height = facts.width, facts.height
            objects = read_line_labels(
                label,
                lambda text: parse_yolo_labels(text, self.names, width, height),
                width,
                height,
                self.log,
                meta,
            )
            if objects is None:
                return
        else:
            self.log.count("images without a label file (kept unlabelled)")
        path = Path(os.path.relpath(image, self.root.absolute())).as_posix()
        name = path.rsplit(".", 1)[0].removeprefix(f"images/{split}/")
        yield Record(
            id=f"{self.dataset}/{split}/{name}",
            dataset=self.dataset,
            split=split,
            image=image_info(path, facts),
            objects=objects,
            meta=meta,
        )
