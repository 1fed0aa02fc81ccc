"""The settings of the ``tile`` stage (light: the CLI builds its options from them)."""

from __future__ import annotations

import os

from pydantic import model_validator

from rsgpt4v.errors import InputError
from rsgpt4v.settings import StageSettings, option


class TileSettings(StageSettings):
    """How scenes are cut: checked when made (:func:`rsgpt4v.tile_windows.check_tiling`)."""

    size: int = option(1024, "--size", help="Tile width and height in pixels.")
    gap: int = option(200, "--gap", help="Overlap of neighbouring tiles in pixels.")
    iof: float = option(
        0.7,
        "--iof",
        help="Intersection-over-object threshold: devkit marks cut objects at or below it "
        "difficult; keep drops objects below it.",
    )
    mode: str = option(
        "devkit",
        "--mode",
        help="devkit: DOTA_devkit ImgSplit (cut objects clipped); keep: mmrotate img_split "
        "(cut objects kept whole).",
    )
    workers: int = option(0, "--workers", help="Threads writing tiles (0: one per CPU, at most 4).")
    skip_bad: bool = option(
        False, "--skip-bad", help="Skip bad records and list them in OUTPUT.rejects.jsonl."
    )

    @model_validator(mode="after")
    def _check(self) -> TileSettings:
        from rsgpt4v.tile_windows import check_tiling  # numpy: only when a run is set up

        check_tiling(self.size, self.gap, self.iof, self.mode)
        if self.workers < 0:
            raise InputError("workers must be 0 (automatic) or more", value=self.workers)
        return self

    def threads(self) -> int:
        return self.workers or min(4, os.cpu_count() or 1)
