"""Box-aware image augmentation for fine-tuning, through albumentations.

Instruction text refers to boxes by ``<ref:N>`` placeholders and the boxes live in the
instruction's regions (COCO ``[x, y, w, h]`` pixels), rendered into the model's box style only
when a sample is collated. So an augmentation only has to move the regions with the pixels; the
text is re-rendered from the moved regions afterwards.

Ops (``BoxAwareAugment(ops=[...])``), each applied with probability ``p``:

- ``hflip``, ``vflip``: mirror the image;
- ``rotate90``: rotate by a random multiple of 90 degrees (width and height swap for odd turns);
- ``crop``: ``albumentations.BBoxSafeRandomCrop``, a random crop that keeps every region whole
  (the output is smaller, never resized; it can shrink down to the union of the regions, and a
  sample without regions is not cropped);
- ``colour``: mild brightness / contrast / saturation jitter, hue untouched, boxes unchanged.

Moving boxes is not enough for every instruction: our rule instructions state grid positions
("top-left"), left/right relations, compass bearings, orientations, colours and counts of all
objects in view. A mirrored image makes "left of" wrong; a crop can cut away counted objects
that have no region. Pass the instruction text (``aug(image, regions, text=...)``) and the ops
that could contradict it are skipped for that sample (see :func:`ops_safe_for`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

import albumentations as A
import numpy as np

from rsgpt4v.errors import InputError, RsgptError

log = logging.getLogger(__name__)

OPS = ("hflip", "vflip", "rotate90", "crop", "colour")

# Colour names the rule instructions use (rsgpt4v.instruct.colour.PALETTE) plus generic words.
_COLOUR = r"white|black|gr[ae]y|red|orange|yellow|beige|brown|green|blue|colou?r\w*|bright|dark"
_ANGLE = (
    r"clockwise|anticlockwise|counterclockwise|degrees?|°|bearing|heading|facing|orient\w*"
    r"|diagonal\w*"
)
_LEFT_RIGHT = r"left|right|east\w*|west\w*"
_TOP_BOTTOM = r"top|bottom|upper|lower|above|below|north\w*|south\w*"
_AXES = r"horizontal\w*|vertical\w*|landscape|portrait|wide|tall|width|height"
_IN_VIEW = (
    r"how many|number of|count\w*|there (?:are|is)|all|every|only|whole|entire|centre|center"
    r"|middle|corner\w*|edge\w*|border\w*|\d+"
)
_CONFLICTS = {
    "hflip": "|".join((_LEFT_RIGHT, _ANGLE)),
    "vflip": "|".join((_TOP_BOTTOM, _ANGLE)),
    "rotate90": "|".join((_LEFT_RIGHT, _TOP_BOTTOM, _ANGLE, _AXES)),
    "crop": "|".join((_IN_VIEW, _LEFT_RIGHT, _TOP_BOTTOM)),
    "colour": _COLOUR,
}
_CONFLICT_PATTERNS = {
    op: re.compile(rf"\b(?:{words})\b", re.IGNORECASE) for op, words in _CONFLICTS.items()
}
_PLACEHOLDER = re.compile(r"<ref:\d+>")


def ops_safe_for(text: str, ops: Iterable[str] = OPS) -> list[str]:
    """The ops whose effect cannot contradict ``text`` (conservative word matching).

    ``<ref:N>`` placeholders are ignored: the boxes they stand for move with the image.
    """
    plain = _PLACEHOLDER.sub(" ", text)
    return [op for op in ops if not _CONFLICT_PATTERNS[op].search(plain)]


def _transform(op: str, p: float) -> A.BasicTransform:
    if op == "hflip":
        return A.HorizontalFlip(p=p)
    if op == "vflip":
        return A.VerticalFlip(p=p)
    if op == "rotate90":
        return A.RandomRotate90(p=p)
    if op == "crop":
        return A.BBoxSafeRandomCrop(erosion_rate=0.0, p=p)
    return A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=p)


def _unmovable_region(image: np.ndarray, regions: dict[str, list[float]]) -> str | None:
    """The first region albumentations would drop: no area, or none of it inside the image."""
    height, width = image.shape[:2]
    for key, (x, y, w, h) in regions.items():
        if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
            return key
    return None


class BoxAwareAugment:
    """Augment an image and move its regions (COCO xywh pixels) with it.

    Deterministic given ``seed``: two instances built alike return the same outputs for the same
    sequence of calls. Keys of ``regions`` are preserved; no region is ever dropped: a sample
    with a box that has no area inside the image gets only the colour op (warned once), since
    albumentations cannot move such a box.
    """

    def __init__(self, ops: Sequence[str], p: float = 0.5, seed: int = 0) -> None:
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise RsgptError(
                f"unknown augmentation op {unknown[0]!r}; choose from {', '.join(OPS)}"
            )
        if not 0.0 <= p <= 1.0:
            raise RsgptError(f"augmentation probability must be within [0, 1], got {p}")
        self.ops = list(dict.fromkeys(ops))
        self.p = p
        self.seed = seed
        self._pipelines: dict[tuple[str, ...], A.Compose] = {}
        self._warned = False

    def _pipeline(self, ops: tuple[str, ...]) -> A.Compose:
        """One seeded Compose per op subset, built on first use.

        Colour-only pipelines carry no box processor, so their boxes come back untouched.
        """
        if ops not in self._pipelines:
            moves_boxes = any(op != "colour" for op in ops)
            self._pipelines[ops] = A.Compose(
                [_transform(op, self.p) for op in ops],
                bbox_params=(
                    A.BboxParams(format="coco", label_fields=["region_keys"], clip=True)
                    if moves_boxes
                    else None
                ),
                seed=self.seed,
            )
        return self._pipelines[ops]

    def __call__(
        self,
        image: np.ndarray,
        regions: dict[str, list[float]],
        text: str | None = None,
    ) -> tuple[np.ndarray, dict[str, list[float]]]:
        """Return the augmented image and the moved regions (same keys, new boxes).

        With ``text``, ops that could make the text false for the new image are skipped.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(
                "augmentation needs an H x W x 3 uint8 image",
                value=f"shape {image.shape}, dtype {image.dtype}",
            )
        ops = tuple(self.ops if text is None else ops_safe_for(text, self.ops))
        unmovable = _unmovable_region(image, regions)
        if unmovable is not None and any(op != "colour" for op in ops):
            if not self._warned:
                log.warning(
                    "region %s %s has no area inside the %dx%d image; geometric augmentation is "
                    "skipped for such samples (warned once)",
                    unmovable,
                    list(regions[unmovable]),
                    image.shape[1],
                    image.shape[0],
                )
                self._warned = True
            ops = tuple(op for op in ops if op == "colour")
        if not ops:
            return image, {key: list(box) for key, box in regions.items()}
        if ops == ("colour",):
            image = self._pipeline(ops)(image=image)["image"]
            return image, {key: list(box) for key, box in regions.items()}
        keys = list(regions)
        out = self._pipeline(ops)(
            image=image, bboxes=[list(regions[k]) for k in keys], region_keys=keys
        )
        # albumentations works in float32 fractions of the image side; round the round trip's
        # noise (about 1e-6 px) away so that an untouched box compares equal to the input.
        moved = {
            key: [round(float(v), 3) for v in box]
            for key, box in zip(out["region_keys"], out["bboxes"], strict=True)
        }
        if set(moved) != set(keys):
            raise RsgptError(f"augmentation lost regions {sorted(set(keys) - set(moved))}")
        return out["image"], {key: moved[key] for key in keys}
