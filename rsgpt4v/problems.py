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


def rejects_path(output: str | Path) -> Path:
    """``records.jsonl`` → ``records.rejects.jsonl``, ``llava.json`` → ``llava.rejects.jsonl``."""
    output = Path(output)
    return output.with_name(output.stem + ".rejects.jsonl")


def write_rejects(output: str | Path, problems: list[Problem]) -> Path | None:
    """One JSON line per reject next to output; a stale file from an earlier run is removed."""
    path = rejects_path(output)
    path.unlink(missing_ok=True)
    if not problems:
        return None
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in problems)
    return path
