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

from functools import lru_cache
from pathlib import Path

from rsgpt4v.errors import InputError


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
