"""Outputs appear only complete: every file is staged under a new name and renamed into place.

The staged file is created next to its output (a rename within one folder is atomic) under a
random name with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so it is always a new file: a file, folder or
symlink left at a fixed name such as ``OUT.partial`` is never followed, truncated or in the way,
and two runs writing one output never write into each other's staged file. A failed run removes
what it staged and leaves the previous output as it was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from rsgpt4v.errors import RsgptError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_TRIES = 100


def create_staged(path: Path) -> tuple[int, Path]:
    """A new, empty file beside path, open for writing: its descriptor and its name.

    Mode 0o666 less the umask, as a plain ``open`` gives, so the renamed output is as readable.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(_TRIES):
            staged = path.with_name(f"{path.name}.{secrets.token_hex(4)}.partial")
            try:
                return os.open(staged, _FLAGS, 0o666), staged
            except FileExistsError:
                continue
        raise FileExistsError(f"no free temporary name after {_TRIES} tries")
    except OSError as error:
        raise RsgptError(f"cannot write {path}: {error.strerror or error}") from None


def commit(staged: Path, path: Path) -> None:
    """Rename the staged file onto path (an existing file is replaced in one step)."""
    try:
        os.replace(staged, path)
    except OSError as error:
        raise RsgptError(f"cannot write {path}: {error.strerror or error}") from None


@contextmanager
def staged_path(path: Path) -> Iterator[Path]:
    """A staged name for writers that open files by name (GDAL, PIL), renamed on success."""
    descriptor, staged = create_staged(path)
    os.close(descriptor)
    try:
        yield staged
        commit(staged, path)
    finally:
        staged.unlink(missing_ok=True)


@contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """UTF-8 text to a staged file, renamed to path only when the block succeeds.

    A failed run leaves no truncated file that a later stage could mistake for a complete one.
    """
    descriptor, staged = create_staged(path)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
        commit(staged, path)
    finally:
        staged.unlink(missing_ok=True)


class StagedFiles:
    """Files staged during a run and renamed into place together when it succeeds (tiles).

    Until then the previous run's files stay whole and unchanged, so the previous output that
    points to them stays true if this run fails. ``sidecars`` are suffixes of files a writer may
    add beside a staged file (GDAL's ``.aux.xml``): they move with it.
    """

    def __init__(self, sidecars: Iterable[str] = ()) -> None:
        self.sidecars = tuple(sidecars)
        self._staged: dict[Path, Path] = {}  # output → its staged file

    def stage(self, path: Path) -> Path:
        """A staged name for path; a path staged twice keeps only the later file."""
        descriptor, staged = create_staged(path)
        os.close(descriptor)
        self.discard([path])
        self._staged[path] = staged
        return staged

    def discard(self, paths: Iterable[Path]) -> None:
        """Remove what was staged for paths (a part of the run that failed)."""
        for path in paths:
            staged = self._staged.pop(path, None)
            if staged is not None:
                self._remove(staged)

    def _remove(self, staged: Path) -> None:
        for name in (staged, *(Path(f"{staged}{suffix}") for suffix in self.sidecars)):
            name.unlink(missing_ok=True)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                for path, staged in list(self._staged.items()):
                    for suffix in self.sidecars:  # a stale sidecar would describe the old file
                        side, old = Path(f"{staged}{suffix}"), Path(f"{path}{suffix}")
                        if side.exists():
                            commit(side, old)
                        else:
                            old.unlink(missing_ok=True)
                    commit(staged, path)
                    del self._staged[path]
        finally:
            for staged in self._staged.values():
                self._remove(staged)
            self._staged.clear()
