"""The ``validate`` settings: how instructions are read and checked, and what the report shows.

Each field is also the command-line option of the ``validate`` command (:func:`option`). Light:
the CLI builds its options from this module, so the checks are imported only to check a value.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator, model_validator

from rsgpt4v.completeness import LabelCompleteness, completeness_table
from rsgpt4v.errors import InputError
from rsgpt4v.export_settings import MAX_PIXELS_HELP
from rsgpt4v.settings import StageSettings, option

if TYPE_CHECKING:
    from rsgpt4v.validate.checks import CheckSettings

#: Perceptual-hash distance (bits) at or below which two images are one (:mod:`.leakage`).
DEFAULT_MAX_DISTANCE = 4


class ValidationOptions(StageSettings):
    """Knobs of a validation run; :attr:`checks` are those of the text checks."""

    image_root: Path | None = option(
        None,
        "--image-root",
        help="Folder the records' image paths are relative to: needed for the leakage check "
        "and for images in the report.",
    )
    iou: float = option(
        0.5, "--iou", help="Boxes written as text below this IoU are rejected.", ge=0.0, le=1.0
    )
    boxes: str = option(
        "auto",
        "--boxes",
        help="Style of boxes written as text: auto (from the text), llava, qwen2vl, qwen25vl, "
        "geochat, minigptv2, internvl, pixel.",
    )
    square_pad: bool | None = option(
        None,
        "--square-pad/--no-square-pad",
        help="Text boxes are relative to the image padded to a square (default: the family's; "
        "on for llava).",
    )
    max_pixels: int | None = option(None, "--max-pixels", help=MAX_PIXELS_HELP, ge=1)
    fmt: str = option("auto", "--format", help="Input format: auto, instructions, llava, sharegpt.")
    leakage: bool = option(
        True, "--leakage/--no-leakage", help="Look for the same image in two splits."
    )
    max_distance: int = option(
        DEFAULT_MAX_DISTANCE,
        "--phash-distance",
        help="Perceptual hashes this close (bits) are one image.",
        ge=0,
    )
    samples: int = option(48, "--samples", help="Instructions in the report viewer.", ge=0)
    seed: int = option(0, "--seed", help="Seed for the report's choice of samples.")
    completeness: dict[str, LabelCompleteness] = option(
        {},
        "--completeness",
        help="YAML file overriding which classes each dataset labels exhaustively, as given "
        "to instruct: exact counts and absent classes are checked only for those "
        "(docs/instructions.md, Label completeness).",
        cli_type=Path | None,
    )

    @model_validator(mode="before")
    @classmethod
    def _unpack_checks(cls, values: Any) -> Any:
        """``checks=CheckSettings(...)`` (how callers passed the text checks) → its fields."""
        if not isinstance(values, dict) or "checks" not in values:
            return values
        rest = {key: value for key, value in values.items() if key != "checks"}
        return dataclasses.asdict(values["checks"]) | rest

    @field_validator("boxes")
    @classmethod
    def _known_style(cls, value: str) -> str:
        from rsgpt4v.validate.text_boxes import check_style

        return check_style(value)  # an unknown style raises BoxFormatError naming the known ones

    @field_validator("fmt")
    @classmethod
    def _known_format(cls, value: str) -> str:
        from rsgpt4v.validate.importer import FORMATS

        if value not in FORMATS:
            raise InputError(f"unknown format {value!r}; expected one of {', '.join(FORMATS)}")
        return value

    _completeness = field_validator("completeness", mode="before")(completeness_table)

    @property
    def checks(self) -> CheckSettings:
        """The settings :func:`~rsgpt4v.validate.checks.check_text` reads."""
        from rsgpt4v.validate.checks import CheckSettings

        return CheckSettings(
            self.iou, self.boxes, self.square_pad, self.max_pixels, self.completeness
        )
