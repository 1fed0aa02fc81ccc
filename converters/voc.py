"""VOC-style detection datasets: split files list image ids, each with one XML and one image.

DIOR, DIOR-R, HRRSD and HRSC2016 share this shape: ``ImageSets/…/{split}.txt`` with one id per
line, an annotation XML per id and an image per id. :class:`ImageSetConverter` walks the split
files and turns each id into a record; a subclass says where the files are and how one object
element reads (Pascal VOC ``<object>`` by default). An annotation whose ``<size>`` disagrees with
the image file is rejected whole, as COCO's ``width``/``height`` are: its boxes are in the pixels
of another image.

:class:`SourceObject` and :func:`place_objects` serve the text-label converters too (NWPU VHR-10,
RSOD): an object is kept as the source writes it (corner box or polygon) and clipped to the image
in one place, so every converter rejects an object outside its image the same way.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from xml.etree.ElementTree import Element

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.converters.safe_xml import child_float, child_text, read_xml
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import (
    GeometryError,
    check_coordinates,
    clip_bbox,
    polygon_to_clipped_bbox,
    size_mismatch,
)
from rsgpt4v.problems import ProblemLog
from rsgpt4v.schema import Object, Record

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class SourceObject:
    """One object as its source writes it; ``line`` or ``entry`` names it in a reject."""

    category: str
    box: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax
    polygon: list[list[float]] | None = None
    difficult: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    entry: str | None = None

    def clipped_bbox(self, width: int, height: int) -> list[float] | None:
        """COCO box clipped to the image: from ``box`` when the source has one, else the polygon.

        Raises :class:`GeometryError` for a NaN, inf or absurd coordinate (``xmax=inf`` would
        otherwise stretch the box to the image edge).
        """
        check_coordinates(self.box if self.box is not None else self.polygon, "object coordinates")
        if self.box is not None:
            xmin, ymin, xmax, ymax = self.box
            return clip_bbox([xmin, ymin, xmax - xmin, ymax - ymin], width, height)
        return polygon_to_clipped_bbox(self.polygon, width, height)


def place_objects(
    sources: Iterable[SourceObject], file: Path, width: int, height: int, log: ProblemLog
) -> list[Object]:
    """Record objects with clipped boxes; one outside the image, without area or with a NaN,
    inf or absurdly large coordinate is rejected."""
    objects: list[Object] = []
    for source in sources:
        shown = list(source.box) if source.box is not None else source.polygon
        try:
            bbox = source.clipped_bbox(width, height)
        except GeometryError as error:
            log.reject(error.reason, file, source.line, shown, entry=source.entry)
            continue
        if bbox is None:
            log.reject(
                f"object lies outside the {width}x{height} image or has no area",
                file,
                source.line,
                shown,
                entry=source.entry,
            )
            continue
        objects.append(
            Object(
                id=len(objects),
                category=source.category,
                bbox=bbox,
                polygon=source.polygon,
                difficult=source.difficult,
                attributes=source.attributes,
            )
        )
    return objects


def label_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line without surrounding blanks) of each non-blank line of a label file."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line:
            yield number, line


DUPLICATE_LINE = "duplicate of line"  # how a repeated object line's reason starts


def duplicate_line(first: int) -> str:
    """The reason for a line that repeats line ``first``: rejected, yet no object is missing."""
    return f"{DUPLICATE_LINE} {first}: the same object twice"


LineParser = Callable[[str], tuple[list[SourceObject], list[tuple[int, str, str]]]]


def read_line_labels(
    label: Path, parse: LineParser, width: int, height: int, log: ProblemLog, meta: dict
) -> list[Object] | None:
    """The objects of a label file of one object per line (``parse`` gives them and the bad
    lines as ``(number, line, reason)``), every bad line rejected by its number.

    Sets ``meta["skipped_objects"]`` when some were left out (not for a repeated line: its
    object is there once); None when the file itself cannot be read (rejected).
    """
    try:
        sources, bad = parse(read_label_text(label))
    except InputError as error:
        reject_error(log, error, label)
        return None
    for number, line, reason in bad:
        log.reject(reason, label, number, line)
    objects = place_objects(sources, label, width, height, log)
    repeats = sum(1 for _, _, reason in bad if reason.startswith(DUPLICATE_LINE))
    skipped = len(bad) - repeats + len(sources) - len(objects)  # a repeat leaves none out
    if skipped:
        meta["skipped_objects"] = skipped
    return objects


def read_label_text(path: Path) -> str:
    """UTF-8 text of a label or split file (a BOM is dropped); InputError naming it otherwise."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", file=path) from None


def reject_error(log: ProblemLog, error: InputError, file: Path) -> None:
    """Pass an InputError raised while reading ``file`` to the log (raise, or keep as a reject)."""
    log.reject(error.reason, error.file or file, error.line, error.value, entry=error.entry)


def read_flag(element: Element, tag: str, file: Path) -> bool:
    """A 0/1 child such as ``<difficult>``; absent or empty means 0 (DIOR HBB has neither)."""
    found = element.find(tag)
    text = (found.text or "").strip() if found is not None else ""
    if text not in ("", "0", "1"):
        raise InputError(f"<{tag}> must be 0 or 1", file=file, value=text)
    return text == "1"


def read_voc_flags(element: Element, file: Path) -> dict[str, Any]:
    """``difficult`` and ``attributes`` (``truncated``) of a VOC-style object, as keywords."""
    truncated = read_flag(element, "truncated", file)
    return {
        "difficult": read_flag(element, "difficult", file),
        "attributes": {"truncated": True} if truncated else {},
    }


def read_voc_object(element: Element, file: Path, entry: str) -> SourceObject:
    """A Pascal VOC ``<object>``: its own ``name`` (never ``owner/name``), ``bndbox``, flags."""
    xmin, ymin, xmax, ymax = (
        child_float(element, f"bndbox/{side}", file) for side in ("xmin", "ymin", "xmax", "ymax")
    )
    return SourceObject(
        category=child_text(element, "name", file),
        box=(xmin, ymin, xmax, ymax),
        entry=entry,
        **read_voc_flags(element, file),
    )


ObjectReader = Callable[[Element, Path, str], SourceObject]


def read_xml_objects(
    root: Element, object_path: str, file: Path, read: ObjectReader, log: ProblemLog
) -> tuple[list[SourceObject], int]:
    """The objects under ``object_path`` and how many elements there were (rejects included).

    A bad element is rejected with its XPath (``/annotation/object[2]``) as the entry, since the
    XML parser keeps no line numbers.
    """
    elements = root.findall(object_path)
    sources = []
    for index, element in enumerate(elements, start=1):
        entry = f"/{root.tag}/{object_path}[{index}]"
        try:
            sources.append(read(element, file, entry))
        except InputError as error:
            log.reject(error.reason, file, value=error.value, entry=entry)
    return sources, len(elements)


def find_image(folders: Iterable[Path], stem: str, default_suffix: str = ".jpg") -> Path:
    """The first ``folder/stem.<image suffix>`` that exists, else the expected path (reported)."""
    folders = list(folders)
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return folders[0] / f"{stem}{default_suffix}"


class ImageSetConverter(Converter):
    """Split files name the images; each id has one annotation XML and one image.

    Without ``--split`` every split file in ``SPLITS`` is read, except ``trainval`` when ``train``
    and ``val`` are both there (it is their union and would repeat every image).
    """

    SPLIT_FOLDER: ClassVar[str] = "ImageSets/Main"
    OBJECT_PATH: ClassVar[str] = "object"

    @abstractmethod
    def annotation_path(self, stem: str) -> Path | None:
        """The annotation file of an image id, or None when there is none."""

    @abstractmethod
    def image_path(self, stem: str, split: str, annotation: Path) -> Path:
        """Where the image of an id is (or would be: a missing one is reported)."""

    def read_object(self, element: Element, file: Path, entry: str) -> SourceObject:
        return read_voc_object(element, file, entry)

    def annotation_meta(self, root: Element) -> dict[str, object]:
        """Facts from the annotation's header for ``record.meta``."""
        return {}

    def annotation_gsd(self, root: Element) -> float | None:
        return None

    def declared_size(self, root: Element, file: Path) -> tuple[float, float] | None:
        """The image size the annotation's coordinates refer to (VOC ``<size>``), or None when
        it gives none; 0 counts as none (written by tools that never opened the image)."""
        sides = ("width", "height")
        if not all((root.findtext(f"size/{side}") or "").strip() for side in sides):
            return None
        width, height = (child_float(root, f"size/{side}", file) for side in sides)
        return None if width == 0 or height == 0 else (width, height)

    @property
    def dataset_name(self) -> str:
        """The dataset part of record ids (DESIGN.md: ``DATASET/SPLIT/NAME``)."""
        return self.NAME

    # -- layout -------------------------------------------------------------------------------
    def split_files(self) -> list[tuple[str, Path]]:
        folder = self.root / self.SPLIT_FOLDER
        present = {s: folder / f"{s}.txt" for s in self.SPLITS if (folder / f"{s}.txt").is_file()}
        if self.split is not None:
            if self.split not in present:
                found = ", ".join(present) or "none"
                raise InputError(f"no split file {self.split}.txt (found: {found})", file=folder)
            return [(self.split, present[self.split])]
        if not present:
            raise InputError(f"no split files; expected {self.LAYOUT}", file=folder)
        if "train" in present and "val" in present:
            present.pop("trainval", None)
        return list(present.items())

    def listed_ids(self, listing: Path) -> Iterator[tuple[int, str]]:
        """(line number, id) of each non-blank line; bad or repeated ids are rejected."""
        seen: set[str] = set()
        try:
            text = read_label_text(listing)
        except InputError as error:
            reject_error(self.log, error, listing)
            return
        for number, raw in enumerate(text.splitlines(), start=1):
            tokens = raw.split()
            if not tokens:
                continue
            stem = tokens[0]
            if len(tokens) != 1 or stem in (".", "..") or "/" in stem or "\\" in stem:
                self.log.reject(
                    "expected one image id (a file stem) per line", listing, number, raw
                )
            elif stem in seen:
                self.log.reject("image id listed twice", listing, number, stem)
            else:
                seen.add(stem)
                yield number, stem

    def estimate_count(self) -> int | None:
        return sum(
            sum(1 for line in path.read_bytes().splitlines() if line.strip())
            for _, path in self.split_files()
        )

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        for split, listing in self.split_files():
            for number, stem in self.listed_ids(listing):
                yield from self._record(split, stem, listing, number)

    def _record(self, split: str, stem: str, listing: Path, number: int) -> Iterator[Record]:
        annotation = self.annotation_path(stem)
        if annotation is None:
            self.log.reject("listed image id has no annotation file", listing, number, stem)
            return
        if not self.inside_root(annotation):
            self.log.reject("annotation file resolves outside the dataset root", annotation)
            return
        image = self.image_path(stem, split, annotation)
        facts = self.image_facts(image, annotation)
        if facts is None:
            return
        try:
            root = read_xml(annotation)
            declared = self.declared_size(root, annotation)
        except InputError as error:
            reject_error(self.log, error, annotation)
            return
        if declared is not None and (
            reason := size_mismatch("XML", declared, facts.width, facts.height)
        ):
            self.log.reject(
                reason, annotation, value=self.relative_path(image), entry=f"/{root.tag}/size"
            )
            return
        sources, found = read_xml_objects(
            root, self.OBJECT_PATH, annotation, self.read_object, self.log
        )
        objects = place_objects(sources, annotation, facts.width, facts.height, self.log)
        meta: dict[str, object] = {
            "labelled": True,
            "annotation_file": self.relative_path(annotation),
            **self.annotation_meta(root),
        }
        if len(objects) < found:  # counts from this image would be wrong: later stages must know
            meta["skipped_objects"] = found - len(objects)
        yield Record(
            id=f"{self.dataset_name}/{split}/{stem}",
            dataset=self.dataset_name,
            split=split,
            image=image_info(self.relative_path(image), facts, self.annotation_gsd(root)),
            objects=objects,
            meta=meta,
        )
