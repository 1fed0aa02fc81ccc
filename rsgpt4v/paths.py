"""Image paths from records and instructions, resolved under the folder the user named.

Record and instruction files may come from someone else (an imported LLaVA set, a shared
records file). An image path that leaves its root (``../``, an absolute path, a symlink pointing
out) would let such a file make rsgpt4v read, copy into a report, or send to an LLM API a file
the user never chose, so the stages that read records (instruct, validate and its report, tile)
go through here.
Training and prediction read exports, whose image paths are relative to the export's folder and
may climb out of it by design (``export --image-root`` writes them so); they read locally only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rsgpt4v.errors import InputError


@dataclass(frozen=True)
class ImageRoot:
    """The folder that record image paths resolve under (``--image-root``), for every stage.

    Checked once to be a folder; each image path goes through :meth:`resolve` (refused when it
    leaves the folder) or :meth:`existing` (also refused when there is no file), with errors
    that name the input file, the entry and the path.
    """

    folder: Path

    def __post_init__(self) -> None:
        if not Path(self.folder).is_dir():
            raise InputError("image root is not a folder", file=self.folder)

    @classmethod
    def of(cls, folder: str | Path | ImageRoot | None) -> ImageRoot | None:
        """The root of an optional ``--image-root`` (None stays None)."""
        if folder is None or isinstance(folder, ImageRoot):
            return folder
        return cls(Path(folder))

    def resolve(
        self, relative: str, *, file: str | Path | None = None, entry: str | None = None
    ) -> Path:
        return under_root(self.folder, relative, file=file, entry=entry)

    def existing(
        self, relative: str, *, file: str | Path | None = None, entry: str | None = None
    ) -> Path:
        path = self.resolve(relative, file=file, entry=entry)
        if not path.is_file():
            raise InputError(
                "image not found under the image root", file=file, entry=entry, value=path
            )
        return path


def under_root(
    root: str | Path, relative: str, *, file: str | Path | None = None, entry: str | None = None
) -> Path:
    """``root / relative``; InputError (naming ``file``, ``entry`` and the path) if it escapes."""
    path = Path(root) / relative
    try:
        inside = path.resolve().is_relative_to(_resolved(str(root)))
    except (ValueError, OSError, RuntimeError) as error:  # a NUL byte, a symlink loop
        reason = f"image path cannot be resolved ({error})"
        raise InputError(reason, file=file, entry=entry, value=relative) from None
    if not inside:
        raise InputError("image path leaves the image root", file=file, entry=entry, value=relative)
    return path


@lru_cache(maxsize=16)
def _resolved(root: str) -> Path:
    return Path(root).resolve()


def record_path_problem(relative: str) -> str | None:
    """Why ``relative`` cannot be a record's image path, or None when it can.

    Records keep POSIX paths that every platform reads the same way, so ``ImageInfo`` refuses a
    backslash (a separator on Windows). On Linux it is a valid file-name character; a converter
    that built a record from such a name would crash validating it, so it checks the name first
    and rejects that image, named, like any other bad item.
    """
    if "\\" in relative:
        return "image path has a backslash, which a record's POSIX path cannot hold (rename it)"
    return None
