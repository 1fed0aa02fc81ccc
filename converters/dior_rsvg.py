"""DIOR-RSVG (Zhan et al.): referring expressions with boxes on DIOR images (visual grounding).

Dataset
    DIOR-RSVG: 38,320 image/expression/box triplets on 17,402 DIOR images (800x800 px, 20
    classes), split 26,991 / 3,829 / 7,500 (train / val / test) by expression, not by image.
Layout
    From the authors' README and loader (ZhanYang-nwpu/RSVG-pytorch), not from the data::

        ROOT/Annotations/00001.xml …     VOC-style, one <object> per referring expression
        ROOT/JPEGImages/00001.jpg …
        ROOT/train.txt, val.txt, test.txt

    ``<object><name>golffield</name><pose>…</pose><bndbox><xmin>…</xmin>…</bndbox>
    <description>A green and brown golf field</description></object>``.
Quirks (unverified: this dataset is not in the format reference; checked against the authors'
loader, its split files and the one annotation file in their repository)
    The split files list **object indices**, not image ids: 0-based positions of ``<object>``
    elements counted over all annotation files in file-name order (the loader walks
    ``Annotations/`` and counts every object). One image's expressions can therefore fall in
    different splits; the image then has one record per split. The file order is the order of
    ``os.walk`` on the authors' machine, taken here as sorted file names [unverified]. Split
    files holding image ids (``00001`` or ``00001.jpg``, as DIOR's own ``ImageSets`` do) are
    accepted too: option ``split_entries`` (``auto`` chooses image ids when every entry names
    an annotation file, else object indices when every entry is a plain number). A malformed
    annotation file stops an index-based conversion even with ``--skip-bad``: the objects after
    it could not be numbered. Class strings are DIOR's (``Expressway-Service-area`` keeps its
    case). No ``<difficult>``/``<truncated>`` tags [from the one file seen; read when present].
Records
    One per image and split: the objects whose expressions are in that split, category from
    ``<name>``, ``bbox`` from ``<bndbox>`` (clipped), no polygon, the expression in
    ``attributes["expression"]`` and the object index in ``attributes["index"]``. Only referred
    objects are annotated, so ``meta.objects_exhaustive`` is false: counting questions cannot
    be asked of these records.
Citation
    Zhan, Xiong and Yuan, "RSVG: Exploring Data and Models for Visual Grounding on Remote
    Sensing Data", IEEE TGRS 2023.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from xml.etree.ElementTree import Element

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.converters.dior import DIOR_CLASSES
from rsgpt4v.converters.safe_xml import child_text, read_xml
from rsgpt4v.converters.voc import SourceObject, find_image, place_objects, read_voc_object
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record

SPLIT_ENTRIES = ("auto", "objects", "images")
NO_SPLIT_FILES = "all"


@dataclass
class SplitListing:
    """What one split file selects: object indices or image ids, each with its line number."""

    split: str
    file: Path | None
    objects: dict[int, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    everything: bool = False  # no split files: every expression, split "all"

    def wants(self, stem: str, index: int) -> bool:
        return self.everything or stem in self.images or index in self.objects


def read_rsvg_object(element: Element, file: Path, entry: str, index: int) -> SourceObject:
    """A VOC ``<object>`` plus its ``<description>``, the referring expression."""
    source = read_voc_object(element, file, entry)
    expression = child_text(element, "description", file)
    attributes = {**source.attributes, "expression": expression, "index": index}
    return dataclasses.replace(source, attributes=attributes)


class DiorRsvgConverter(Converter):
    NAME = "dior-rsvg"
    DESCRIPTION = "DIOR-RSVG visual grounding: referring expressions with boxes on DIOR images."
    LAYOUT = (
        "ROOT/Annotations/*.xml (object + description) + ROOT/JPEGImages/*.jpg + ROOT/{split}.txt"
    )
    SPLITS = ("train", "val", "test")
    CLASSES = DIOR_CLASSES
    OPTIONS: ClassVar[dict[str, str]] = {
        "split_entries": "what split files list: auto (default), objects (0-based object "
        "indices over Annotations/*.xml in name order) or images (image ids)"
    }
    CITATION = (
        "Zhan, Xiong and Yuan, RSVG: Exploring Data and Models for Visual Grounding on Remote"
        " Sensing Data, IEEE TGRS 2023"
    )

    def __init__(self, root: str | Path, **kwargs: object) -> None:
        super().__init__(root, **kwargs)  # type: ignore[arg-type]
        self.entries = self.options.get("split_entries", "auto")
        if self.entries not in SPLIT_ENTRIES:
            raise InputError(
                f"option split_entries must be one of {', '.join(SPLIT_ENTRIES)}",
                value=self.entries,
            )

    # -- layout -------------------------------------------------------------------------------
    def annotation_files(self) -> list[Path]:
        files = sorted((self.root / "Annotations").glob("*.xml"), key=lambda p: p.name)
        if not files:
            raise InputError(f"no Annotations/*.xml; expected {self.LAYOUT}", file=self.root)
        return files

    def split_files(self) -> list[tuple[str, Path]]:
        present = [(s, self.root / f"{s}.txt") for s in self.SPLITS]
        present = [(s, p) for s, p in present if p.is_file()]
        if self.split is not None:
            if self.split not in self.SPLITS:
                known = ", ".join(self.SPLITS)
                raise InputError(f"unknown dior-rsvg split {self.split!r}; known: {known}")
            present = [(s, p) for s, p in present if s == self.split]
            if not present:
                raise InputError(f"no split file {self.split}.txt", file=self.root)
        return present

    def read_listing(self, split: str, path: Path, stems: set[str]) -> SplitListing:
        """Parse a split file as object indices or image ids (see the module docstring)."""
        listing = SplitListing(split, path)
        try:
            content = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise InputError(f"split file is not UTF-8 text ({error.reason})", file=path) from None
        lines = [
            (number, line.strip())
            for number, line in enumerate(content.splitlines(), start=1)
            if line.strip()
        ]
        names = [_image_stem(text) for _, text in lines]
        mode = self.entries
        if mode == "auto":
            numbers = all(_is_index(text) and str(int(text)) == text for _, text in lines)
            mode = "objects" if numbers and not set(names) <= stems else "images"
        for (number, text), name in zip(lines, names, strict=True):
            if mode == "images":
                if name not in stems:
                    self.log.reject("names no file in Annotations/", path, number, text)
                elif name in listing.images:
                    self.log.reject("image listed twice", path, number, text)
                else:
                    listing.images[name] = number
            elif not _is_index(text):
                self.log.reject("expected an object index (a number)", path, number, text)
            elif int(text) in listing.objects:
                self.log.reject("object index listed twice", path, number, text)
            else:
                listing.objects[int(text)] = number
        return listing

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        files = self.annotation_files()
        stems = {p.stem for p in files}
        listings = [self.read_listing(s, p, stems) for s, p in self.split_files()]
        if not listings:
            self.log.warn("no train/val/test.txt: every expression goes to split 'all'", self.root)
            listings = [SplitListing(NO_SPLIT_FILES, None, everything=True)]
        numbered = any(listing.objects for listing in listings)
        total = 0
        for path in files:
            try:
                root = read_xml(path)
            except InputError as error:
                if numbered:
                    raise InputError(
                        f"{error.reason}; the split files number objects across all annotation"
                        " files, so the objects after this file cannot be placed",
                        file=path,
                        line=error.line,
                    ) from None
                self.log.reject(error.reason, error.file or path, error.line, error.value)
                continue
            elements = root.findall("object")
            yield from self._image_records(path, root, elements, total, listings)
            total += len(elements)
        for listing in listings:
            for index, number in sorted(listing.objects.items()):
                if index >= total:
                    self.log.reject(
                        f"object index beyond the {total} objects of Annotations/",
                        listing.file or self.root,
                        number,
                        index,
                    )

    def _image_records(
        self,
        path: Path,
        root: Element,
        elements: list[Element],
        first_index: int,
        listings: list[SplitListing],
    ) -> Iterator[Record]:
        """The records of one annotation file: one per split that selects any of its objects."""
        chosen: dict[str, list[SourceObject]] = defaultdict(list)
        rejected: dict[str, int] = defaultdict(int)
        for position, element in enumerate(elements):
            index = first_index + position
            splits = [ls.split for ls in listings if ls.wants(path.stem, index)]
            if not splits:
                continue
            entry = f"/{root.tag}/object[{position + 1}]"
            try:
                source = read_rsvg_object(element, path, entry, index)
            except InputError as error:
                self.log.reject(error.reason, path, value=error.value, entry=entry)
                for split in splits:
                    rejected[split] += 1
                continue
            for split in splits:
                chosen[split].append(source)
        if not chosen:
            return
        image = self._image_path(path, root)
        facts = self.image_facts(image, path)
        if facts is None:
            return
        for listing in listings:
            if listing.split not in chosen:
                continue
            objects = place_objects(
                chosen[listing.split], path, facts.width, facts.height, self.log
            )
            skipped = rejected[listing.split] + len(chosen[listing.split]) - len(objects)
            meta: dict[str, object] = {
                "annotation_file": self.relative_path(path),
                "objects_exhaustive": False,
            }
            if skipped:
                meta["skipped_objects"] = skipped
            yield Record(
                id=f"{self.NAME}/{listing.split}/{path.stem}",
                dataset=self.NAME,
                split=listing.split,
                image=image_info(self.relative_path(image), facts),
                objects=objects,
                meta=meta,
            )

    def _image_path(self, annotation: Path, root: Element) -> Path:
        """``JPEGImages/<filename>`` from the XML, else the image named like the XML."""
        folder = self.root / "JPEGImages"
        found = root.find("filename")
        name = (found.text or "").strip() if found is not None else ""
        if name:
            return folder / name
        return find_image([folder], annotation.stem)


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _image_stem(entry: str) -> str:
    """``00001``, ``00001.jpg`` and ``00001.xml`` all name the image ``00001``."""
    path = Path(entry)
    return path.stem if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".xml") else entry
