"""What a validation run writes besides the clean file: its summary and the rejects file."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v.atomic import commit, create_staged
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import JsonlWriter
from rsgpt4v.validate.checks import Rejection


@dataclass
class ValidationSummary:
    """What a validation run read, kept and rejected, and where it wrote it."""

    instructions: int = 0
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    output: Path | None = None
    rejects_file: Path | None = None
    report: Path | None = None
    leakage_checked: bool = False
    leaked_records: int = 0
    format: str = "instructions"
    iou: float = 0.5
    variety: dict[str, Any] = field(default_factory=dict)  # report.stats.PhrasingVariety


class RejectsWriter:
    """The rejects file beside the output, and the count of each reason.

    Written to a temporary file and renamed at the end only when something was rejected (a run
    with nothing rejected leaves no rejects file, and a failed run leaves the earlier one whole,
    as it leaves the earlier clean file).
    """

    def __init__(self, summary: ValidationSummary, instructions: Path) -> None:
        self.summary, self.instructions = summary, instructions
        self.path = rejects_path(summary.output or instructions)
        self.reasons: dict[str, int] = {}

    def __enter__(self) -> RejectsWriter:
        descriptor, self.partial = create_staged(self.path)  # new: a planted link is not followed
        self._handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="\n")
        return self

    def reject(self, rejections: list[Rejection], line: int | None) -> None:
        """One rejected instruction (read at ``line`` of the input) with all its reasons."""
        self.summary.rejected += 1
        for rejection in rejections:
            self.reasons[rejection.code] = self.reasons.get(rejection.code, 0) + 1
            self._handle.write(reject_line(rejection, self.instructions, line) + "\n")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._handle.close()
        try:
            if kind is not None:
                return
            if self.summary.rejected:
                commit(self.partial, self.path)
                self.summary.rejects_file = self.path
            else:
                self.path.unlink(missing_ok=True)  # an earlier run's, stale now
        finally:
            self.partial.unlink(missing_ok=True)  # gone already once committed
        self.summary.reasons = dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def reject_line(rejection: Rejection, path: Path, line: int | None) -> str:
    """A rejects-file line: rsgpt4v.problems fields plus the human message."""
    return json.dumps(
        {
            "reason": rejection.code,
            "file": str(path),
            "line": line,
            "value": None if rejection.value is None else str(rejection.value),
            "entry": rejection.instruction,
            "message": rejection.message,
        },
        ensure_ascii=False,
    )


def maybe_writer(output: str | Path | None) -> JsonlWriter | nullcontext[None]:
    return JsonlWriter(output) if output else nullcontext()
