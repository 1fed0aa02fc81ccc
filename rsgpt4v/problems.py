"""Bad input that is never lost: raised with its file and line, or collected as a reject.

By default the first problem stops the run with an :class:`InputError` naming the file, the line
and the value. With ``--skip-bad`` the run goes on and every problem becomes a line of a rejects
file next to the output, so a user can see exactly what was left out and why.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rsgpt4v.atomic import atomic_text
from rsgpt4v.errors import InputError


@dataclass(frozen=True)
class Problem:
    """One rejected item (an object, a line, an image) and why."""

    reason: str
    file: str
    line: int | None = None
    value: str | None = None
    entry: str | None = None  # a JSON path or XML element, for files without useful lines

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
            "value": self.value,
            "entry": self.entry,
        }


@dataclass
class ProblemLog:
    """Raises on the first problem, or collects them all when ``skip_bad`` is set."""

    skip_bad: bool = False
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def reject(
        self,
        reason: str,
        file: str | Path,
        line: int | None = None,
        value: object = None,
        *,
        entry: str | None = None,
    ) -> None:
        if not self.skip_bad:
            raise InputError(
                reason + " (use --skip-bad to skip it and list it in the rejects file)",
                file=file,
                line=line,
                entry=entry,
                value=value,
            )
        text = None if value is None else str(value)
        self.problems.append(Problem(reason, str(file), line, text, entry))

    def warn(self, reason: str, file: str | Path, line: int | None = None) -> None:
        """Something the user should know that loses nothing (e.g. an image without labels)."""
        self.warnings.append(Problem(reason, str(file), line))

    def count(self, what: str, n: int = 1) -> None:
        """Tally something the summary reports, e.g. ``duplicate captions removed``."""
        self.counts[what] += n


def rejects_path(output: str | Path, kind: str = "rejects") -> Path:
    """``train.jsonl`` → ``train.jsonl.rejects.jsonl``: named from the whole file name.

    Named from the stem, ``validate -o train.jsonl`` and ``export -o train.json`` would share one
    rejects file, and the second run would delete the first one's rejects. ``kind`` names other
    listings of items left out on purpose (``train.json.not-written.jsonl``).
    """
    output = Path(output)
    return output.with_name(f"{output.name}.{kind}.jsonl")


def write_rejects(
    output: str | Path, problems: list[Problem], kind: str = "rejects"
) -> Path | None:
    """One JSON line per reject next to output; a stale file from an earlier run is removed.

    Written to a fresh temporary file and renamed into place, so a killed run leaves the earlier
    rejects whole.
    """
    path = rejects_path(output, kind)
    if not problems:
        path.unlink(missing_ok=True)
        return None
    with atomic_text(path) as handle:
        handle.writelines(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in problems)
    return path


class LineNumbers:
    """The line numbers of a JSONL file's non-blank lines, counted as ``read_jsonl`` counts them.

    A stage that streams models from ``read_jsonl`` knows only the how-manieth one it holds; this
    turns that into the line a user can open. Lines are read only when a problem asks, forward
    from the last one asked, so a run with no problem pays nothing. Use as a context manager.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: TextIO | None = None
        self._index = -1  # the last non-blank line read, counting from 0
        self._line = 0

    def __call__(self, index: int) -> int | None:
        """The line number of non-blank line ``index`` (0: the first), None past the end."""
        if self._handle is None or index < self._index:
            self.close()
            # errors="replace": bytes that are not UTF-8 split into lines exactly as they would
            self._handle = self.path.open(encoding="utf-8", errors="replace")
            self._index, self._line = -1, 0
        while self._index < index:
            text = self._handle.readline()
            if not text:
                return None
            self._line += 1
            self._index += bool(text.strip())
        return self._line

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> LineNumbers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def at_line(
    error: InputError, file: str | Path, line: int | None, entry: str | None = None
) -> InputError:
    """``error`` said at the line of ``file`` that led to it, e.g. the record of a missing image.

    The error's own place (the image file) stays in the message, so the user sees both the line
    to fix and the file that failed. An error already about ``file`` is returned as it is.
    """
    if error.file == str(file):
        return error
    reason = error.reason
    if error.file is not None and error.file not in reason:
        reason = f"{error.file}: {reason}"
    return InputError(reason, file=file, line=line, entry=error.entry or entry, value=error.value)
