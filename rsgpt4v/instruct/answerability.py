"""What a model can answer at its own input size: tiny objects and huge counts are not asked.

A 2048-px scene shown to LLaVA-1.5 becomes 336 px: a 6-px car becomes one pixel, so "how many
cars?" or "where is the car?" trains the model to guess. ``instruct --model-family F`` (or
``--input-size N``) states what the model sees; an object is asked about on its own only if its
shorter side (of its oriented box, when it has one) stays at least :data:`MIN_VISIBLE_PX` pixels
there, and a class is counted only when every counted object stays that large. Without either
option sizes are not judged (the summary says so); counts above :data:`MAX_COUNT` are never asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsgpt4v.errors import InputError
from rsgpt4v.families import NAMES, get_family, smart_resize
from rsgpt4v.geometry import polygon_to_obb
from rsgpt4v.schema import Object

#: Shorter side, in pixels of the model's input, below which an object is not asked about on its
#: own. DOTA v1.5 calls instances under 10 px "extremely small" (they were left unlabelled in
#: v1.0); AI-TOD puts "very tiny" objects at 2-8 px. 10 px is also under one 14-px ViT patch of
#: CLIP ViT-L/14: smaller objects do not fill a single patch of LLaVA-1.5's vision tower.
MIN_VISIBLE_PX = 10
#: Largest count asked: beyond it a model shown the image cannot count one by one (the counts of
#: the real DOTA marina tiles, 497-505 boats, are noise to it), and nobody checks the answer.
MAX_COUNT = 50
#: Qwen2-VL's processor budget (its preprocessor_config.json), also Qwen2.5-VL's default.
QWEN_PIXELS = (56 * 56, 28 * 28 * 16384)


@dataclass(frozen=True)
class ModelInput:
    """The picture a model is shown: a family's input, or a longer side of ``size`` pixels."""

    family: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.family is not None and self.family not in NAMES:
            raise InputError(
                f"unknown model family {self.family!r}; expected one of: {', '.join(NAMES)}"
            )
        if self.size is not None and self.size < 1:
            raise InputError("--input-size must be a positive number of pixels", value=self.size)

    @property
    def given(self) -> bool:
        return self.family is not None or self.size is not None

    def scale(self, width: int, height: int) -> float | None:
        """Pixels of the model's input per pixel of a ``width`` x ``height`` image; None when
        no input was given (sizes are then not judged).

        The smaller of the two axes' scales where a family stretches the image to a square.
        """
        if self.size is not None:
            return self.size / max(width, height)
        if self.family is None:
            return None
        spec = get_family(self.family)
        if spec.frame == "resize" or self.family == "qwen2vl":
            low = spec.min_pixels or QWEN_PIXELS[0]
            high = spec.max_pixels or QWEN_PIXELS[1]
            shown_h, shown_w = smart_resize(height, width, spec.patch_factor, low, high)
            return min(shown_w / width, shown_h / height)
        if spec.input_size is None:  # the file's own pixels
            return 1.0
        # padded to a square and resized (LLaVA), or stretched to one (the longer axis shrinks most)
        return spec.input_size / max(width, height)

    def describe(self) -> str:
        """How the summary names this input."""
        if self.size is not None:
            return f"images shown at {self.size} px on the longer side"
        if self.family is None:
            return "not judged (no --model-family or --input-size)"
        return f"{self.family}'s input"


def shorter_side(obj: Object) -> float:
    """The object's width across: its oriented box's shorter side, else its box's."""
    if obj.polygon is not None and len(obj.polygon) >= 3:
        return polygon_to_obb(obj.polygon)[3]
    return min(obj.bbox[2], obj.bbox[3])


def visible(obj: Object, scale: float | None) -> bool:
    """Whether the object stays at least MIN_VISIBLE_PX across at the model's input (always,
    when the input is not known)."""
    return scale is None or shorter_side(obj) * scale >= MIN_VISIBLE_PX
