"""RSVQA-LR and RSVQA-HR (Lobry et al.): images with generated questions and answers.

Dataset
    RSVQA-LR: 772 Sentinel-2 RGB tiles of 256x256 px over the Netherlands with 77k questions;
    RSVQA-HR: about 10,659 USGS aerial tiles of 512x512 px at 15 cm with about 1M questions,
    and a second test set over Philadelphia taken with another sensor.
Layout
    One folder per variant, three JSON files per split joined by ids::

        ROOT/Images_LR/0.tif …                      LR images, named by integer id, unpadded
        ROOT/LR_split_{train,val,test}_{images,questions,answers}.json
        ROOT/Data/0.tif …                           HR images
        ROOT/USGS_split_{train,val,test,test_phili}_{images,questions,answers}.json

    ``{"images": [{"id", "questions_ids", "active", "original_name", "sensor", "res_x", …}]}``,
    ``{"questions": [{"id", "img_id", "type", "question", "answers_ids", "active", …}]}``,
    ``{"answers": [{"id", "question_id", "answer", "active", …}]}``.
Quirks
    The split files are dense arrays indexed by id: entries of other splits are placeholders
    ``{"id": 17, "active": false}``, skipped and counted. Entries are joined by their ``id``
    field, not their position. Question types: ``presence``, ``count``, ``comp``, ``area`` (HR),
    ``rural_urban`` (LR). Answers are raw strings kept as written (``yes``, ``12``, ``1234m2``,
    ``rural``): the bins used by the official model are computed, not stored. The rural/urban
    question has no ``?`` and is kept as written. ``res_x`` is text such as ``.1524m``; its
    number is the GSD unless the GeoTIFF itself gives one (the raw text stays in ``meta``).
    ``test_phili`` (test set 2) is a split of its own; its file name is from memory, not
    verified. The official loader also follows ``questions_ids`` and ``answers_ids``; here the
    questions are grouped by ``img_id`` and answered through ``answers_ids``.
Records
    One per image holding all its QA pairs (ordered by question id, ``QA.type`` from the
    question). Records carry no objects, so ``meta.labelled`` is false (no object labels).
Citation
    Lobry et al., "RSVQA: Visual Question Answering for Remote Sensing Data", IEEE TGRS 2020.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rsgpt4v.converters.base import Converter
from rsgpt4v.errors import InputError
from rsgpt4v.schema import QA, ImageInfo, Record

FILE_KINDS = ("images", "questions", "answers")
INACTIVE = "inactive RSVQA entries skipped"
# image-entry fields that are bookkeeping, not facts about the image
NOT_META = frozenset({"id", "active", "questions_ids"})


def parse_resolution(text: object) -> float | None:
    """``".1524m"`` → 0.1524; None when the text is not a positive length in metres."""
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        return None
    value = str(text).strip().removesuffix("m")
    try:
        metres = float(value)
    except ValueError:
        return None
    return metres if math.isfinite(metres) and metres > 0 else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class SplitTables:
    """The active entries of one split's three files, keyed by id, with their JSON paths."""

    files: dict[str, Path]
    images: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    questions: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    answers: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)


class RsvqaConverter(Converter):
    """Shared reader; the variants differ in file prefix, image folder and splits."""

    PREFIX: ClassVar[str]
    IMAGE_DIR: ClassVar[str]
    CITATION = (
        "Lobry et al., RSVQA: Visual Question Answering for Remote Sensing Data, IEEE TGRS 2020"
    )

    def split_files(self, split: str) -> dict[str, Path]:
        return {kind: self.root / f"{self.PREFIX}_split_{split}_{kind}.json" for kind in FILE_KINDS}

    def splits_present(self) -> list[str]:
        """The asked split, or every split with at least one of its files present."""
        if self.split is not None:
            if self.split not in self.SPLITS:
                known = ", ".join(self.SPLITS)
                raise InputError(f"unknown {self.NAME} split {self.split!r}; known: {known}")
            return [self.split]
        present = [s for s in self.SPLITS if any(p.is_file() for p in self.split_files(s).values())]
        if not present:
            raise InputError(f"no RSVQA split files; expected {self.LAYOUT}", file=self.root)
        return present

    def records(self) -> Iterator[Record]:
        for split in self.splits_present():
            tables = self._load_split(split)
            if tables is not None:
                yield from self._split_records(split, tables)

    # -- reading ------------------------------------------------------------------------------
    def _load_split(self, split: str) -> SplitTables | None:
        files = self.split_files(split)
        missing = [p for p in files.values() if not p.is_file()]
        if missing:
            raise InputError(f"split {split!r} is missing its {missing[0].name}", file=missing[0])
        tables = SplitTables(files)
        for kind, path in files.items():
            entries = self._read_entries(path, kind)
            if entries is None:
                return None
            setattr(tables, kind, self._active_by_id(entries, kind, path))
        return tables

    def _read_entries(self, path: Path, kind: str) -> list[Any] | None:
        """The list under the file's top-level key; a file of another shape is rejected."""
        try:
            data = json.loads(path.read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError as error:
            self.log.reject(f"not UTF-8 text ({error.reason}); split skipped", path)
            return None
        except json.JSONDecodeError as error:
            self.log.reject(f"not valid JSON ({error.msg}); split skipped", path, error.lineno)
            return None
        if not isinstance(data, dict) or not isinstance(data.get(kind), list):
            self.log.reject(f'expected {{"{kind}": [...]}}; split skipped', path, entry=kind)
            return None
        return data[kind]

    def _active_by_id(
        self, entries: list[Any], kind: str, path: Path
    ) -> dict[int, tuple[str, dict[str, Any]]]:
        """Active entries by their ``id``; placeholders counted, malformed entries rejected."""
        active: dict[int, tuple[str, dict[str, Any]]] = {}
        inactive = 0
        for position, entry in enumerate(entries):
            where = f"{kind}[{position}]"
            if not isinstance(entry, dict) or not _is_int(entry.get("id")):
                self.log.reject("entry has no integer id", path, entry=where, value=entry)
                continue
            if entry.get("active", True) is False:
                inactive += 1
                continue
            if entry["id"] in active:
                first = active[entry["id"]][0]
                self.log.reject(f"id already used by {first}", path, entry=where, value=entry["id"])
                continue
            active[entry["id"]] = (where, entry)
        if inactive:
            self.log.count(INACTIVE, inactive)
        return active

    # -- joining ------------------------------------------------------------------------------
    def _answer_of(self, tables: SplitTables, where: str, question: dict[str, Any]) -> str | None:
        """The answer text of a question (its first active answer), or None after a reject."""
        path = tables.files["questions"]
        ids = question.get("answers_ids")
        if not isinstance(ids, list) or not ids:
            self.log.reject("question has no answers_ids", path, entry=where, value=ids)
            return None
        found = [tables.answers[i] for i in ids if _is_int(i) and i in tables.answers]
        if not found:
            self.log.reject("question has no active answer", path, entry=where, value=ids)
            return None
        answer_where, answer = found[0]
        for extra_where, extra in found[1:]:
            self.log.reject(
                f"second answer to {where}; the first ({answer_where}) is kept",
                tables.files["answers"],
                entry=extra_where,
                value=extra.get("answer"),
            )
        text = answer.get("answer")
        if isinstance(text, bool) or not isinstance(text, str | int | float) or text == "":
            self.log.reject(
                "answer is not a non-empty string or number",
                tables.files["answers"],
                entry=f"{answer_where}.answer",
                value=text,
            )
            return None
        return str(text)

    def _qa_by_image(self, tables: SplitTables) -> dict[int, list[QA]]:
        path = tables.files["questions"]
        by_image: dict[int, list[QA]] = defaultdict(list)
        used_answers: set[int] = set()
        for _question_id, (where, question) in sorted(tables.questions.items()):
            ids = question.get("answers_ids")
            if isinstance(ids, list):  # a question rejected below is reported with its answers
                used_answers.update(i for i in ids if _is_int(i))
            image_id, text = question.get("img_id"), question.get("question")
            if not isinstance(text, str) or not text.strip():
                self.log.reject("question has no text", path, entry=f"{where}.question", value=text)
                continue
            if not _is_int(image_id) or image_id not in tables.images:
                self.log.reject(
                    "img_id names no active image", path, entry=f"{where}.img_id", value=image_id
                )
                continue
            answer = self._answer_of(tables, where, question)
            if answer is None:
                continue
            kind = question.get("type")
            by_image[image_id].append(
                QA(question=text, answer=answer, type=kind if isinstance(kind, str) else None)
            )
        for answer_id in sorted(set(tables.answers) - used_answers):
            where, answer = tables.answers[answer_id]
            self.log.reject(
                "answer belongs to no active question",
                tables.files["answers"],
                entry=where,
                value=answer.get("answer"),
            )
        return by_image

    def _split_records(self, split: str, tables: SplitTables) -> Iterator[Record]:
        by_image = self._qa_by_image(tables)
        without = len(set(tables.images) - set(by_image))
        if without:
            self.log.count("RSVQA images without questions", without)
        for image_id in sorted(by_image):
            where, entry = tables.images[image_id]
            qa = by_image[image_id]
            record = self._record(split, image_id, where, entry, qa, tables.files["images"])
            if record is not None:
                self.log.count("QA pairs", len(qa))
                yield record

    def _record(
        self,
        split: str,
        image_id: int,
        where: str,
        entry: dict[str, Any],
        qa: list[QA],
        images_file: Path,
    ) -> Record | None:
        path = self.root / self.IMAGE_DIR / f"{image_id}.tif"
        if not path.is_file():
            self.log.reject(
                f"image not found; its {len(qa)} QA pairs are skipped",
                images_file,
                entry=where,
                value=self.relative_path(path),
            )
            return None
        facts = self.image_facts(path, images_file)
        if facts is None:
            return None
        meta: dict[str, Any] = {"labelled": False, "image_id": image_id}
        meta.update({k: v for k, v in entry.items() if k not in NOT_META})
        gsd = facts.gsd or parse_resolution(entry.get("res_x"))  # the file knows best
        return Record(
            id=f"{self.NAME}/{split}/{image_id}",
            dataset=self.NAME,
            split=split,
            image=ImageInfo(
                path=self.relative_path(path),
                width=facts.width,
                height=facts.height,
                bands=facts.bands,
                gsd=gsd,
                crs=facts.crs,
                transform=facts.transform,
            ),
            qa=qa,
            meta=meta,
        )


class RsvqaLrConverter(RsvqaConverter):
    NAME = "rsvqa-lr"
    DESCRIPTION = "RSVQA low resolution: Sentinel-2 tiles with presence/count/comparison QA."
    LAYOUT = (
        "ROOT/Images_LR/<id>.tif + ROOT/LR_split_{train,val,test}_{images,questions,answers}.json"
    )
    SPLITS = ("train", "val", "test")
    PREFIX = "LR"
    IMAGE_DIR = "Images_LR"


class RsvqaHrConverter(RsvqaConverter):
    NAME = "rsvqa-hr"
    DESCRIPTION = "RSVQA high resolution: 15 cm USGS tiles with presence/count/area QA."
    LAYOUT = (
        "ROOT/Data/<id>.tif + ROOT/USGS_split_{train,val,test,test_phili}_"
        "{images,questions,answers}.json"
    )
    SPLITS = ("train", "val", "test", "test_phili")
    PREFIX = "USGS"
    IMAGE_DIR = "Data"
