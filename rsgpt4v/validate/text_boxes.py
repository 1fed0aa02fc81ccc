"""Boxes written as text (by an LLM, or in an imported dataset) read back and matched to labels.

Rule instructions carry boxes as ``<ref:N>`` data, but text from elsewhere writes coordinates in
one of the ``rsgpt4v.boxfmt`` styles. A text is read in the style its markers name
(``<|box_start|>``, ``<box>``, ``bbox_2d``, ``{<..>}``); bare ``[x1, y1, x2, y2]`` lists are
``llava`` when every value is within 0-1 and ``pixel`` otherwise. Each box is then matched to
the closest labelled box by IoU, computed with ``pycocotools.mask.iou``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsgpt4v.boxfmt import STYLES, TextBox
from rsgpt4v.errors import BoxFormatError
from rsgpt4v.families import BoxConvention, BoxView
from rsgpt4v.geometry import iou_matrix

AUTO = "auto"
_MARKED_STYLES = (  # (style, a marker only that style writes), most specific first
    ("qwen2vl", "<|box_start|>"),
    ("internvl", "<box>"),
    ("qwen25vl", "bbox_2d"),
)
_ABSOLUTE_STYLES = ("pixel", "qwen25vl")
_BRACED = re.compile(r"\{\s*<")
_GEOCHAT_ANGLE = re.compile(r">\s*\|")
_BARE_QUAD = re.compile(r"\[\s*[-+]?[\d.]+\s*(?:,\s*[-+]?[\d.]+\s*){3}\]")


@dataclass(frozen=True)
class BoxMatch:
    """A text box, the best-overlapping labelled box (its object id) and their IoU."""

    box: TextBox
    style: str
    object_id: int | None
    iou: float

    def xywh(self) -> list[float]:
        return _xywh(self.box)


def check_style(style: str) -> str:
    """``auto`` or a boxfmt style name; anything else raises with the known names."""
    if style != AUTO and style not in STYLES:
        raise BoxFormatError(f"unknown box style {style!r}; expected auto or {', '.join(STYLES)}")
    return style


def detect_style(text: str) -> str | None:
    """The box style a text is written in, or None when it holds no box."""
    for style, marker in _MARKED_STYLES:
        if marker in text:
            return style
    if _BRACED.search(text):
        return "geochat" if _GEOCHAT_ANGLE.search(text) else "minigptv2"
    quads = _BARE_QUAD.findall(text)
    if not quads:
        return None
    values = [float(v) for quad in quads for v in re.findall(r"[-+]?[\d.]+", quad)]
    return "llava" if all(0.0 <= v <= 1.0 for v in values) else "pixel"


def convention(
    style: str, square_pad: bool | None = None, max_pixels: int | None = None
) -> BoxConvention:
    """The family convention of ``style`` (:mod:`rsgpt4v.families`): padding applies to the
    normalised styles, a pixel budget to qwen25vl; otherwise the family's defaults."""
    absolute = style in _ABSOLUTE_STYLES
    return BoxConvention(
        style,
        square_pad=None if absolute else square_pad,
        max_pixels=max_pixels if style == "qwen25vl" else None,
    )


def text_boxes(
    text: str,
    width: int,
    height: int,
    *,
    style: str = AUTO,
    square_pad: bool | None = None,
    max_pixels: int | None = None,
) -> tuple[str | None, list[TextBox]]:
    """(style, boxes in pixels) of every box written in ``text``; (None, []) when there is none."""
    chosen = detect_style(text) if style == AUTO else style
    if chosen is None:
        return None, []
    return chosen, convention(chosen, square_pad, max_pixels).view(width, height).parse(text)


def match_boxes(
    boxes: Sequence[TextBox],
    style: str,
    truth: Sequence[tuple[int, Sequence[float]]],
    width: int,
    height: int,
    *,
    square_pad: bool | None = None,
    max_pixels: int | None = None,
) -> list[BoxMatch]:
    """Each text box with the labelled box (``(object id, COCO xywh)``) it overlaps most.

    The labelled boxes are first written and read back in ``style``, so a box is compared with
    what the style can say: a 4 px car on the 0-100 grid of ``minigptv2`` is right when it is
    the grid cell the label rounds to, not wrong for lacking the precision the style lacks.
    """
    if not boxes:
        return []
    detected = [_xywh(b) for b in boxes]
    if not truth:
        return [BoxMatch(box, style, None, 0.0) for box in boxes]
    view = convention(style, square_pad, max_pixels).view(width, height)
    ground = [_xywh(_as_written(view, bbox)) for _, bbox in truth]
    ious = iou_matrix(detected, ground)
    same = np.isclose(np.asarray(detected)[:, None, :], np.asarray(ground)[None, :, :]).all(axis=2)
    ious[same] = 1.0  # equal boxes that the grid made flat have no area, yet match exactly
    best = ious.argmax(axis=1)
    return [
        BoxMatch(box, style, truth[int(j)][0], float(ious[i, j]))
        for i, (box, j) in enumerate(zip(boxes, best, strict=True))
    ]


def _xywh(box: TextBox) -> list[float]:
    return [box.x1, box.y1, max(box.x2 - box.x1, 0.0), max(box.y2 - box.y1, 0.0)]


def _as_written(view: BoxView, bbox: Sequence[float]) -> TextBox:
    """A COCO box as the view's family writes it, read back (pixels, on its grid)."""
    x, y, w, h = (float(v) for v in bbox)
    return TextBox(*view.round_trip((x, y, x + w, y + h)))
