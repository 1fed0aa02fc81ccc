"""FloodNet Track 2 (VQA): UAV images after Hurricane Harvey with questions about damage.

Dataset
    FloodNet (Rahnemoonfar et al., 2021), Track 2: 2,348 UAV images of 4000x3000 px with
    questions of four types; 4,511 QA pairs in the training file.
Layout
    ::

        ROOT/Images/Train_Image/10165.jpg …   ROOT/Questions/Training Question.json
        ROOT/Images/Valid_Image/…             ROOT/Questions/Valid Question.json
        ROOT/Images/Test_Image/…              ROOT/Questions/Test_Question.json

    A JSON object keyed by question id:
    ``{"0": {"Image_ID": "10165.JPG", "Question": "…", "Ground_Truth": "flooded",
    "Question_Type": "Condition_Recognition"}, …}``.
Quirks
    File names are inconsistent (spaces in two, an underscore in the test file), so files and
    folders are found by their leading word (``train``, ``val``/``valid``, ``test``) ignoring
    case, spaces and underscores. ``Image_ID`` ends in ``.JPG`` while files may be ``.jpg``:
    matched case-insensitively (then by stem). ``Ground_Truth`` is a string (``flooded``,
    ``non flooded``, ``Yes``) or a JSON number (a count), kept as written (``3``, ``2.0``).
    ``Question_Type`` ∈ ``Simple_Counting``, ``Complex_Counting``, ``Condition_Recognition``,
    ``Yes_No`` becomes ``QA.type``. The test file has no ``Ground_Truth`` [from memory].
Records
    One per image with all its questions, ``meta.labelled`` false (no object labels).
    ``qa`` holds answered questions only: a question without ``Ground_Truth`` in the test split
    goes to ``meta.unanswered_questions`` (``[{"question", "type"}]``) and never becomes a QA
    pair with an empty answer, so no later stage can train on or score against a missing
    answer. In train/val a missing ``Ground_Truth`` is bad input (rejected).
Citation
    Rahnemoonfar et al., "FloodNet: A High Resolution Aerial Imagery Dataset for Post Flood
    Scene Understanding", IEEE Access 2021.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.errors import InputError
from rsgpt4v.schema import QA, Record

SPLIT_WORDS = {"train": "train", "val": "val", "test": "test"}  # split → leading word of names
UNANSWERED_SPLITS = ("test",)


def _normal(name: str) -> str:
    """``Training Question.json`` → ``trainingquestion.json``: names compared without noise."""
    return re.sub(r"[\s_\-]", "", name.lower())


@dataclass
class ImageQuestions:
    """Everything the questions file says about one image."""

    where: str  # the first question's JSON path, to name it in a reject
    qa: list[QA] = field(default_factory=list)
    unanswered: list[dict[str, str | None]] = field(default_factory=list)


class FloodnetVqaConverter(Converter):
    NAME = "floodnet-vqa"
    DESCRIPTION = "FloodNet Track 2 VQA: UAV flood images, counting/condition/yes-no questions."
    LAYOUT = (
        "ROOT/Images/{Train,Valid,Test}_Image/*.jpg + ROOT/Questions/{Training Question,"
        "Valid Question,Test_Question}.json"
    )
    SPLITS = ("train", "val", "test")
    CITATION = (
        "Rahnemoonfar et al., FloodNet: A High Resolution Aerial Imagery Dataset for Post Flood"
        " Scene Understanding, IEEE Access 2021"
    )

    # -- layout -------------------------------------------------------------------------------
    def _one(self, folder: Path, split: str, what: str, want_dir: bool) -> Path | None:
        if not folder.is_dir():
            return None
        word = SPLIT_WORDS[split]
        found = [
            p
            for p in sorted(folder.iterdir())
            if p.is_dir() == want_dir
            and _normal(p.name).startswith(word)
            and (want_dir or p.suffix.lower() == ".json")
        ]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InputError(f"several {what} for split {split!r}: {names}", file=folder)
        return found[0] if found else None

    def question_file(self, split: str) -> Path | None:
        return self._one(self.root / "Questions", split, "question files", want_dir=False)

    def image_folder(self, split: str) -> Path | None:
        return self._one(self.root / "Images", split, "image folders", want_dir=True)

    def question_files(self) -> list[tuple[str, Path]]:
        """(split, question file) for the asked split, or for every split that has one."""
        if self.split is not None and self.split not in self.SPLITS:
            known = ", ".join(self.SPLITS)
            raise InputError(f"unknown floodnet-vqa split {self.split!r}; known: {known}")
        splits = [self.split] if self.split else list(self.SPLITS)
        present = [(s, path) for s in splits if (path := self.question_file(s)) is not None]
        if not present:
            raise InputError(f"no question file found; expected {self.LAYOUT}", file=self.root)
        return present

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        for split, questions in self.question_files():
            by_image = self._read_questions(split, questions)
            if by_image is None:
                continue
            images = self.image_folder(split)
            if images is None:
                self.log.reject(f"no image folder for split {split!r}", self.root / "Images")
                continue
            yield from self._split_records(split, questions, images, by_image)

    def _read_questions(self, split: str, path: Path) -> dict[str, ImageQuestions] | None:
        try:
            text = path.read_bytes().decode("utf-8-sig")
            data = json.loads(text, parse_int=str, parse_float=str)  # numbers as written
        except UnicodeDecodeError as error:
            self.log.reject(f"not UTF-8 text ({error.reason})", path)
            return None
        except json.JSONDecodeError as error:
            self.log.reject(f"not valid JSON ({error.msg})", path, error.lineno)
            return None
        if not isinstance(data, dict):
            self.log.reject("expected an object keyed by question id", path)
            return None
        by_image: dict[str, ImageQuestions] = {}
        for key, entry in data.items():
            where = f"[{json.dumps(key)}]"
            self._add_question(split, path, where, entry, by_image)
        return by_image

    def _add_question(
        self,
        split: str,
        path: Path,
        where: str,
        entry: Any,
        by_image: dict[str, ImageQuestions],
    ) -> None:
        if not isinstance(entry, dict):
            self.log.reject("question entry is not an object", path, entry=where, value=entry)
            return
        for name in ("Image_ID", "Question"):
            if not isinstance(entry.get(name), str) or not entry[name].strip():
                self.log.reject(
                    f"missing {name}", path, entry=f"{where}.{name}", value=entry.get(name)
                )
                return
        kind = entry.get("Question_Type")
        kind = kind if isinstance(kind, str) else None
        answer = entry.get("Ground_Truth")
        unanswered = answer is None and split in UNANSWERED_SPLITS
        if not unanswered and not (isinstance(answer, str) and answer.strip()):
            self.log.reject(
                "Ground_Truth must be a non-empty string or number",
                path,
                entry=f"{where}.Ground_Truth",
                value=answer,
            )
            return
        image = by_image.setdefault(entry["Image_ID"].strip(), ImageQuestions(where))
        if unanswered:
            image.unanswered.append({"question": entry["Question"], "type": kind})
        else:
            image.qa.append(QA(question=entry["Question"], answer=answer.strip(), type=kind))

    def _split_records(
        self, split: str, questions: Path, folder: Path, by_image: dict[str, ImageQuestions]
    ) -> Iterator[Record]:
        files = [p for p in sorted(folder.iterdir()) if p.is_file()]
        by_name = {p.name.lower(): p for p in files}
        by_stem: dict[str, Path] = {}
        for path in files:
            by_stem.setdefault(path.stem.lower(), path)
        for image_id, found in by_image.items():
            path = by_name.get(image_id.lower()) or by_stem.get(Path(image_id).stem.lower())
            count = len(found.qa) + len(found.unanswered)
            if path is None:
                self.log.reject(
                    f"image not found in {self.relative_path(folder)}; its {count} questions"
                    " are skipped",
                    questions,
                    entry=f"{found.where}.Image_ID",
                    value=image_id,
                )
                continue
            facts = self.image_facts(path, questions)
            if facts is None:
                continue
            meta: dict[str, Any] = {"labelled": False, "image_id": image_id}
            if found.unanswered:
                meta["unanswered_questions"] = found.unanswered
            if found.qa:
                self.log.count("QA pairs", len(found.qa))
            if found.unanswered:
                self.log.count("unanswered questions (no Ground_Truth)", len(found.unanswered))
            yield Record(
                id=f"{self.NAME}/{split}/{path.stem}",
                dataset=self.NAME,
                split=split,
                image=image_info(self.relative_path(path), facts),
                qa=found.qa,
                meta=meta,
            )
