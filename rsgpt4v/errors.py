"""The project's exception hierarchy.

Every error a user can cause derives from :class:`RsgptError`; the CLI prints it as one line and
exits with status 2. Errors about input data name the file, the line or entry and the bad value,
so the user knows what to fix without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RsgptError(Exception):
    """Base class of every error rsgpt4v raises on purpose."""


class InputError(RsgptError):
    """Bad input data: names where it is (file, line or entry) and the offending value."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        entry: str | None = None,
        value: object = None,
    ) -> None:
        self.reason = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.entry = entry
        self.value = value
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.entry:
            where += f" [{self.entry}]"
        text = f"{where}: {self.reason}" if where else self.reason
        if self.value is not None:
            text += f" (got {self.value!r})"
        return text


class BoxFormatError(RsgptError):
    """An unknown box style, or a box that cannot be rendered in the asked style."""


class ConverterNotFoundError(RsgptError):
    """The asked dataset name is not a registered converter."""
