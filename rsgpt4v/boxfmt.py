"""Box text styles: render a pixel box the way a target model writes it, and parse it back.

Regions are kept once, in pixel coordinates of the image (origin top-left, x right, y down);
each target model writes boxes in its own text convention (the README's box-style table), so
this module holds one serialiser and one parser per style. The same parsers read model output
in evaluation, so parsing tolerates whitespace, surrounding prose and several boxes in one text.
LLaVA-1.5 boxes are relative to the image padded to a centred square (LLaVA#606), hence the
``square_pad`` keyword of the normalised styles. Which style, frame and precision a model family
uses is decided in one place, :mod:`rsgpt4v.families`, which passes a :class:`Frame` here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rsgpt4v.errors import BoxFormatError

_NUM = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
_QUAD = rf"\[{_NUM},{_NUM},{_NUM},{_NUM}\]"
_ANGLES = rf"<{_NUM}>\s*<{_NUM}>\s*<{_NUM}>\s*<{_NUM}>"


@dataclass(frozen=True)
class TextBox:
    """A box parsed from text, in pixel coordinates of the image.

    Corners are normalised so that ``x1 <= x2`` and ``y1 <= y2`` even when the text had them
    swapped. ``angle`` is in degrees, set by angle styles (``geochat``) only.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    angle: float | None = None


@dataclass(frozen=True)
class _Style:
    """One text convention.

    ``scale`` is the full-scale value of a normalised style (None: absolute pixels); text values
    are rounded to ``decimals`` places. ``template`` is a ``str.format`` template over the
    formatted ``x1 y1 x2 y2`` (and ``angle``); ``pattern`` matches one box, its groups being the
    four coordinates (and the angle). With a ``container``, ``pattern`` runs inside each of its
    matches (a tag holding several boxes).
    """

    template: str
    pattern: re.Pattern[str]
    scale: float | None
    decimals: int = 0
    container: re.Pattern[str] | None = None
    has_angle: bool = False
    top: float | None = None  # largest value written, when below the scale ([0, 1000) grids)

    def find(self, text: str) -> Iterator[tuple[str, ...]]:
        """The number groups of every box in ``text``, in order."""
        chunks = [m.group(1) for m in self.container.finditer(text)] if self.container else [text]
        for chunk in chunks:
            for match in self.pattern.finditer(chunk):
                yield match.groups()


_REGISTRY: dict[str, _Style] = {
    # LLaVA-1.5: 0-1 floats, 2 decimals as in its own grounding data, relative to the padded
    # square (LLaVA#606).
    "llava": _Style("[{x1}, {y1}, {x2}, {y2}]", re.compile(_QUAD), scale=1.0, decimals=2),
    # Qwen2-VL: corner pairs on the 0-1000 grid [0, 1000) between special tokens.
    "qwen2vl": _Style(
        "<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>",
        re.compile(rf"<\|box_start\|>\s*\({_NUM},{_NUM}\)\s*,\s*\({_NUM},{_NUM}\)\s*<\|box_end\|>"),
        scale=1000.0,
        top=999.0,
    ),
    # Qwen2.5-VL: absolute pixels of the image it was shown, as JSON.
    "qwen25vl": _Style(
        '{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}]}}',
        re.compile(rf"\"bbox_2d\"\s*:\s*{_QUAD}"),
        scale=None,
    ),
    # GeoChat: 0-100 and an integer angle in degrees, written as given: GeoChat does not document
    # its angle normalisation (GeoChat#5). Parse also accepts a bare `|θ}`.
    "geochat": _Style(
        "{{<{x1}><{y1}><{x2}><{y2}>|<{angle}>}}",
        re.compile(rf"\{{\s*{_ANGLES}\s*\|\s*<?{_NUM}>?\s*\}}"),
        scale=100.0,
        has_angle=True,
    ),
    # MiniGPT-v2 (and SkyEyeGPT): 0-100.
    "minigptv2": _Style(
        "{{<{x1}><{y1}><{x2}><{y2}>}}", re.compile(rf"\{{\s*{_ANGLES}\s*\}}"), scale=100.0
    ),
    # InternVL: 0-1000; one tag may hold several boxes.
    "internvl": _Style(
        "<box>[[{x1}, {y1}, {x2}, {y2}]]</box>",
        re.compile(_QUAD),
        scale=1000.0,
        container=re.compile(r"<box>(.*?)</box>", re.DOTALL),
    ),
    "pixel": _Style("[{x1}, {y1}, {x2}, {y2}]", re.compile(_QUAD), scale=None),
}

STYLES: tuple[str, ...] = tuple(_REGISTRY)

# (offset, canvas, full) of one axis: text value = (pixel + offset) * full / canvas
_Axis = tuple[float, float, float]


@dataclass(frozen=True)
class Frame:
    """How pixels of the image file map to the numbers in the text, one axis each.

    Each axis is ``(offset, canvas, full)``: text value = ``(pixel + offset) * full / canvas``.
    The file itself is ``(0, width, scale)``; LLaVA's padded square is ``((side - width) // 2,
    side, scale)``; pixels of an image resized to ``shown`` are ``(0, width, shown_width)``.
    """

    x: _Axis
    y: _Axis


def _style(name: str) -> _Style:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BoxFormatError(
            f"unknown box style {name!r}; expected one of: {', '.join(STYLES)}"
        ) from None


def _frame(
    spec: _Style, width: int, height: int, square_pad: bool, frame: Frame | None = None
) -> tuple[_Axis, _Axis]:
    """The x and y axes mapping pixels of the image to text values of ``spec``."""
    if width < 1 or height < 1:
        raise BoxFormatError(f"image size must be positive, got {width}x{height}")
    if frame is not None:
        return frame.x, frame.y
    if spec.scale is None:
        if square_pad:
            raise BoxFormatError("square_pad applies to normalised styles, not absolute pixels")
        return (0.0, float(width), float(width)), (0.0, float(height), float(height))
    if not square_pad:
        return (0.0, float(width), spec.scale), (0.0, float(height), spec.scale)
    # LLaVA's expand2square pastes the image at the integer offset (side - size) // 2.
    side = max(width, height)
    return (
        ((side - width) // 2, float(side), spec.scale),
        ((side - height) // 2, float(side), spec.scale),
    )


def _to_text(value: float, axis: _Axis, decimals: int, top: float | None) -> str:
    offset, canvas, full = axis
    t = (value + offset) * full / canvas
    t = 0.0 if t <= 0 else min(t, full)
    text = f"{t:.{decimals}f}" if decimals else str(round(t))
    if top is not None and float(text) > top:
        text = f"{top:.{decimals}f}" if decimals else str(round(top))
    return text


def _to_pixel(text: str, axis: _Axis) -> float:
    offset, canvas, full = axis
    return float(text) * canvas / full - offset


def _check_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise BoxFormatError(f"a box is four numbers (x1, y1, x2, y2), got {box!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BoxFormatError(f"box has a non-finite coordinate: {box!r}")
    if x2 < x1 or y2 < y1:
        raise BoxFormatError(f"degenerate box, expected x1 <= x2 and y1 <= y2: {box!r}")
    return x1, y1, x2, y2


def style_scale(style: str) -> float | None:
    """Full-scale value of a normalised style (1, 100 or 1000); None for pixel styles."""
    return _style(style).scale


def render_box(
    style: str,
    box: Sequence[float],
    width: int,
    height: int,
    *,
    angle: float | None = None,
    square_pad: bool = False,
    frame: Frame | None = None,
    decimals: int | None = None,
) -> str:
    """Write the pixel box ``(x1, y1, x2, y2)`` of a ``width`` x ``height`` image in ``style``.

    Values are rounded to the style's grid (``decimals`` overrides its precision) and clamped to
    the canvas. ``frame`` replaces the style's own mapping (a model family's view of the image).
    ``angle`` (degrees) is only accepted by angle styles, which write 0 when it is None; passing
    it elsewhere raises rather than silently dropping the orientation.
    """
    spec = _style(style)
    x1, y1, x2, y2 = _check_box(box)
    if angle is not None and not spec.has_angle:
        raise BoxFormatError(f"style {style!r} cannot write an angle (got {angle!r})")
    if angle is not None and not math.isfinite(angle):
        raise BoxFormatError(f"angle must be finite, got {angle!r}")
    ax, ay = _frame(spec, width, height, square_pad, frame)
    places = spec.decimals if decimals is None else decimals
    fields = {
        name: _to_text(value, axis, places, spec.top)
        for name, value, axis in zip(
            ("x1", "y1", "x2", "y2"), (x1, y1, x2, y2), (ax, ay, ax, ay), strict=True
        )
    }
    if spec.has_angle:
        fields["angle"] = str(round(angle or 0.0))
    return spec.template.format(**fields)


def parse_boxes(
    style: str,
    text: str,
    width: int,
    height: int,
    *,
    square_pad: bool = False,
    frame: Frame | None = None,
) -> list[TextBox]:
    """Every box of ``style`` found in ``text``, in order, in pixel coordinates of the image.

    Surrounding prose and extra whitespace are ignored; text without a box gives ``[]``. Values
    are mapped back without clamping (a model may point outside the image); swapped corners are
    reordered so that ``x1 <= x2`` and ``y1 <= y2``.
    """
    spec = _style(style)
    ax, ay = _frame(spec, width, height, square_pad, frame)
    boxes = []
    for groups in spec.find(text):
        x1, x2 = sorted((_to_pixel(groups[0], ax), _to_pixel(groups[2], ax)))
        y1, y2 = sorted((_to_pixel(groups[1], ay), _to_pixel(groups[3], ay)))
        angle = float(groups[4]) if spec.has_angle else None
        boxes.append(TextBox(x1, y1, x2, y2, angle))
    return boxes


def quantisation(
    style: str,
    width: int,
    height: int,
    *,
    square_pad: bool = False,
    frame: Frame | None = None,
    decimals: int | None = None,
) -> tuple[float, float]:
    """The largest error in pixels (x, y) a render then parse adds to a box inside the image.

    It is half a grid step of the style: 0.5 px for pixel styles, half of ``canvas / scale``
    (scaled down by the decimals) for normalised ones. On a ``[0, 1000)`` grid a box touching
    the far edge moves by one more step.
    """
    spec = _style(style)
    ax, ay = _frame(spec, width, height, square_pad, frame)
    step = 10.0 ** -(spec.decimals if decimals is None else decimals)
    half = step if spec.top is not None else 0.5 * step
    return half * ax[1] / ax[2], half * ay[1] / ay[2]
