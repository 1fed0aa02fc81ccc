"""RSIVQA (Zheng et al.): questions and answers about images of five older datasets.

Dataset
    RSIVQA: 111k question/answer lines generated from the labels of UCM, Sydney, RSICD (in a
    folder called ``AID``), DOTA and HRRSD; the repository holds the text files only.
Layout
    The repository's ``RSIVQA/`` folder, with the images of each source dataset placed next to
    its text files (the images are not distributed with RSIVQA)::

        ROOT/UCM/ucm_vqa.txt, ucm_res.txt    + ROOT/UCM/images/1.tif …
        ROOT/Sydney/sydney_vqa.txt           + ROOT/Sydney/images/1.tif …
        ROOT/AID/rsicd_vqa.txt               + ROOT/AID/images/00433.jpg, airport_1.jpg …
        ROOT/DOTA/dota_{train,val}_vqa2.txt  + ROOT/DOTA/images/P0000.png …
        ROOT/HRRSD/opt_val_vqa.txt           + ROOT/HRRSD/images/00001.jpg …

    Every ``ROOT/<folder>/*.txt`` is read, so other subsets work the same way.
Quirks
    One QA per line, ``<image>:<question>?<answer>``, no space around ``?``; the separator is
    ``:`` (UCM, Sydney, AID) or ``: `` (DOTA, HRRSD). Image keys carry an extension (``1.tif``)
    or not (DOTA ``P0000``, HRRSD ``00001``: matched by file stem). ``ucm_res.txt`` has
    questions with a missing object (``How many  in the picture?zero``, two spaces): kept as
    written. Answers are words or digits, kept as written. A line without ``:``, or without
    exactly one ``?``, or with an empty question or answer is rejected with its file and line.
    There are no split files: a file whose name says ``train``/``val``/``test`` gives that
    split, the others ``all``. The same image in two files of a folder (``ucm_vqa.txt`` and
    ``ucm_res.txt``) is one record with the QA pairs of both.
Records
    One per image (id ``rsivqa/SPLIT/FOLDER/STEM``: UCM and Sydney both have ``1.tif``), its
    QA pairs in file order with ``type`` null (the source has no question types),
    ``meta.qa_files`` the files they came from, ``meta.labelled`` false (no object labels).
Citation
    Zheng et al., "Mutual Attention Inception Network for Remote Sensing Visual Question
    Answering", IEEE TGRS 2021.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.errors import InputError
from rsgpt4v.schema import QA, Record

IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")
SPLIT_WORDS = ("train", "val", "test")


@dataclass(frozen=True)
class RsivqaLine:
    image: str
    question: str
    answer: str


def parse_rsivqa_line(line: str) -> RsivqaLine:
    """Split ``image:question?answer`` (or ``image: question?answer``); ValueError says why."""
    image, colon, rest = line.partition(":")
    if not colon or not image.strip():
        raise ValueError("expected '<image>:<question>?<answer>'")
    marks = rest.count("?")
    if marks != 1:
        raise ValueError(f"expected exactly one '?' between question and answer, found {marks}")
    question, _, answer = rest.partition("?")
    question, answer = question.lstrip(), answer.strip()
    if not question.strip():
        raise ValueError("empty question")
    if not answer:
        raise ValueError("empty answer")
    return RsivqaLine(image=image.strip(), question=question + "?", answer=answer)


def split_of(path: Path) -> str:
    """``dota_train_vqa2.txt`` → train, ``opt_val_vqa.txt`` → val, ``ucm_vqa.txt`` → all."""
    words = path.stem.lower().split("_")
    return next((s for s in SPLIT_WORDS if s in words), "all")


class ImageFolder:
    """The images of one subset, found by file name or, for keys without extension, by stem."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        self.by_name = {p.name: p for p in images}
        self.by_lower_name = {p.name.lower(): p for p in images}
        self.by_stem: dict[str, Path] = {}
        for path in images:
            self.by_stem.setdefault(path.stem, path)

    def find(self, key: str) -> Path:
        """The image a key names; the expected path when there is none (reported by the caller)."""
        if Path(key).suffix.lower() in IMAGE_SUFFIXES:
            return self.by_name.get(key) or self.by_lower_name.get(key.lower()) or self.folder / key
        return self.by_stem.get(key) or self.folder / key


class RsivqaConverter(Converter):
    NAME = "rsivqa"
    DESCRIPTION = "RSIVQA: image:question?answer text files over UCM, Sydney, RSICD, DOTA, HRRSD."
    LAYOUT = "ROOT/<subset>/*.txt (image:question?answer lines) + ROOT/<subset>/images/<image>"
    SPLITS = ("all", "train", "val", "test")
    CITATION = (
        "Zheng et al., Mutual Attention Inception Network for Remote Sensing Visual Question"
        " Answering, IEEE TGRS 2021"
    )

    def text_files(self) -> list[Path]:
        if self.split is not None and self.split not in self.SPLITS:
            known = ", ".join(self.SPLITS)
            raise InputError(f"unknown rsivqa split {self.split!r}; known: {known}")
        files = [
            p
            for p in sorted(self.root.glob("*/*.txt"))
            if self.split is None or split_of(p) == self.split
        ]
        if not files:
            raise InputError(f"no RSIVQA text files; expected {self.LAYOUT}", file=self.root)
        return files

    def records(self) -> Iterator[Record]:
        groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
        for path in self.text_files():
            groups[(path.parent.name, split_of(path))].append(path)
        for (subset, split), files in groups.items():
            yield from self._group_records(subset, split, files)

    def _group_records(self, subset: str, split: str, files: list[Path]) -> Iterator[Record]:
        """One record per image of a subset and split, with the QA pairs of all its files."""
        images = ImageFolder(self.root / subset / "images")
        qa: dict[Path, list[QA]] = defaultdict(list)
        sources: dict[Path, dict[str, tuple[Path, int]]] = defaultdict(dict)
        for text_file in files:
            for number, parsed in self._lines(text_file):
                path = images.find(parsed.image)
                qa[path].append(QA(question=parsed.question, answer=parsed.answer))
                sources[path].setdefault(self.relative_path(text_file), (text_file, number))
        for path, pairs in qa.items():
            first_file, first_line = next(iter(sources[path].values()))
            if not path.is_file():
                self.log.reject(
                    f"image not found; its {len(pairs)} QA pairs are skipped",
                    first_file,
                    first_line,
                    self.relative_path(path),
                )
                continue
            facts = self.image_facts(path, first_file)
            if facts is None:
                continue
            self.log.count("QA pairs", len(pairs))
            yield Record(
                id=f"{self.NAME}/{split}/{subset}/{path.stem}",
                dataset=self.NAME,
                split=split,
                image=image_info(self.relative_path(path), facts),
                qa=pairs,
                meta={"labelled": False, "subset": subset, "qa_files": list(sources[path])},
            )

    def _lines(self, path: Path) -> Iterator[tuple[int, RsivqaLine]]:
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            self.log.reject(f"not UTF-8 text ({error.reason})", path)
            return
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, parse_rsivqa_line(line)
            except ValueError as error:
                self.log.reject(f"not an RSIVQA line: {error}", path, number, line)
