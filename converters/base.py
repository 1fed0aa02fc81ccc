"""What every converter shares: the class contract, safe path handling and the problem log.

A converter reads one legacy dataset layout and yields :class:`~rsgpt4v.schema.Record` objects.
Bad input never disappears: it goes through :class:`~rsgpt4v.problems.ProblemLog`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from rsgpt4v.completeness import EXHAUSTIVE, LabelCompleteness
from rsgpt4v.errors import InputError
from rsgpt4v.paths import record_path_problem
from rsgpt4v.problems import ProblemLog
from rsgpt4v.raster import RasterFacts, describe_raster
from rsgpt4v.schema import ImageInfo, Record


def image_info(path: str, facts: RasterFacts, gsd: float | None = None) -> ImageInfo:
    """A record's image block from the file's facts; a GSD from the annotation wins."""
    return ImageInfo(
        path=path,
        width=facts.width,
        height=facts.height,
        bands=facts.bands,
        gsd=gsd or facts.gsd,
        crs=facts.crs,
        transform=facts.transform,
    )


class Converter(ABC):
    """A legacy dataset layout → records. Subclasses declare the data contract as constants."""

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    LAYOUT: ClassVar[str]
    SPLITS: ClassVar[tuple[str, ...]] = ()
    CLASSES: ClassVar[tuple[str, ...]] = ()
    OPTIONS: ClassVar[Mapping[str, str]] = {}
    CITATION: ClassVar[str] = ""
    # which classes are labelled wherever they appear (rsgpt4v.completeness): counts and
    # absences are stated only for those
    COMPLETENESS: ClassVar[LabelCompleteness] = EXHAUSTIVE

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | None = None,
        log: ProblemLog | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self._resolved_root = self.root.resolve()
        if not self.root.is_dir():
            raise InputError("dataset root is not a folder", file=self.root)
        self.split = split
        self.log = log or ProblemLog()
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(self.OPTIONS))
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in self.OPTIONS.items()) or "none"
            raise InputError(f"unknown option for {self.NAME}: {unknown[0]}; known: {known}")

    @abstractmethod
    def records(self) -> Iterator[Record]:
        """Yield one record per image, streaming."""

    def estimate_count(self) -> int | None:
        """Roughly how many records `records()` will yield, for a progress bar; None if unknown."""
        return None

    def image_facts(self, path: Path, source: str | Path | None = None) -> RasterFacts | None:
        """Size, bands and georeferencing of an image; a missing or unreadable one is rejected.

        ``source`` is the annotation file that names the image, reported with the problem.
        """
        if not path.is_file():
            self.log.reject("image not found", source or path, value=self.relative_path(path))
            return None
        if not self.inside_root(path):
            self.log.reject("image resolves outside the dataset root", source or path, value=path)
            return None
        problem = record_path_problem(self.relative_path(path))
        if problem is not None:
            self.log.reject(problem, source or path, value=self.relative_path(path))
            return None
        try:
            return describe_raster(path)
        except InputError as error:
            self.log.reject(error.reason, path)
            return None

    def inside_root(self, path: Path) -> bool:
        """False for a path (or symlink) that resolves outside the dataset root."""
        return path.resolve().is_relative_to(self._resolved_root)

    def relative_path(self, path: Path) -> str:
        """The record's image path: relative to the root, POSIX separators."""
        return path.relative_to(self.root).as_posix()
