"""Model families: how each model sees an image and writes its boxes, in one place.

A box rendered for training, shown in a prompt, read back from an answer and scored must land
in the same frame, so export, finetune, predict and evaluate all take the family's conventions
from here (docs/families.md lists them with their sources):

- **frame**: the picture the model is shown. ``file``: the image as stored (boxes normalised to
  it, or its pixels); ``square``: LLaVA-1.5's ``expand2square``, the image pasted at the integer
  offset ``(side - size) // 2`` on a square of the processor's mean colour (truncated to
  integers); ``resize``: Qwen2.5-VL's ``smart_resize`` to multiples of 28 between ``min_pixels``
  and ``max_pixels``, whose pixels the boxes are written in.
- **box text**: the :mod:`rsgpt4v.boxfmt` style, its precision and grid bounds.
- **phrase markers** around the object a box belongs to, in answers (Qwen2-VL's
  ``<|object_ref_start|>``, InternVL's ``<ref>``), or the ``label`` of Qwen2.5-VL's JSON.
- **chat template** used to train and prompt (finetune/templates.py), and its BOS handling.

A :class:`BoxConvention` is a family plus one run's settings (padding, precision, pixel budget);
its :meth:`~BoxConvention.view` of one image renders and parses that image's boxes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from rsgpt4v.boxfmt import (
    STYLES,
    Frame,
    TextBox,
    parse_boxes,
    quantisation,
    render_box,
    style_scale,
)
from rsgpt4v.errors import BoxFormatError
from rsgpt4v.schema import REF

FrameKind = Literal["file", "square", "resize"]


@dataclass(frozen=True)
class Family:
    """The fixed conventions of one model family (see the module docstring)."""

    name: str
    style: str
    frame: FrameKind
    phrase: tuple[str, str] | None = None  # markers around an answer's object phrase
    json_label: bool = False  # Qwen2.5-VL: the phrase is the JSON object's "label"
    template: str | None = None  # training chat template (finetune/templates.py)
    bos_in_template: bool = False  # the template writes BOS: tokenise without special tokens
    patch_factor: int = 28  # resize: sides are multiples of patch size x spatial merge
    min_pixels: int | None = None  # resize: the processor's defaults
    max_pixels: int | None = None
    input_size: int | None = None  # the vision tower's input side, where it is fixed
    source: str = ""


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "llava",
            "llava",
            "square",
            template="llava",
            bos_in_template=True,
            input_size=336,
            source="LLaVA-1.5 (haotian-liu/LLaVA: expand2square in llava/mm_utils.py, "
            "conv_vicuna_v1; grounding boxes 0-1 of the padded square with 2 decimals, LLaVA#606)",
        ),
        Family(
            "qwen2vl",
            "qwen2vl",
            "file",
            phrase=("<|object_ref_start|>", "<|object_ref_end|>"),
            template="qwen2vl",
            source="Qwen2-VL (QwenLM/Qwen2-VL README, grounding: <|object_ref_start|>phrase"
            "<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>, the [0, 1000) grid)",
        ),
        Family(
            "qwen25vl",
            "qwen25vl",
            "resize",
            json_label=True,
            template="qwen25vl",
            min_pixels=56 * 56,
            max_pixels=28 * 28 * 16384,
            source="Qwen2.5-VL (QwenLM/Qwen2.5-VL cookbooks/spatial_understanding: "
            '[{"bbox_2d": [x1, y1, x2, y2], "label": ...}] in absolute pixels of the resized '
            "image; smart_resize and min/max_pixels in its image processor)",
        ),
        Family(
            "geochat",
            "geochat",
            "file",
            input_size=504,
            source="GeoChat (mbzuai-oryx/GeoChat paper: {<x1><y1><x2><y2>|θ} on a 0-100 grid)",
        ),
        Family(
            "minigptv2",
            "minigptv2",
            "file",
            phrase=("<p>", "</p>"),
            input_size=448,
            source="MiniGPT-v2 (Vision-CAIR/MiniGPT-4 paper: <p>phrase</p>{<x1><y1><x2><y2>}, "
            "0-100)",
        ),
        Family(
            "internvl",
            "internvl",
            "file",
            phrase=("<ref>", "</ref>"),
            input_size=448,
            source="InternVL (OpenGVLab/InternVL docs, grounding: <ref>phrase</ref>"
            "<box>[[x1, y1, x2, y2]]</box>, 0-1000)",
        ),
        Family("pixel", "pixel", "file", source="pixels of the image file, for other tools"),
    )
}
NAMES: tuple[str, ...] = tuple(FAMILIES)
if set(NAMES) != set(STYLES):  # every box style is one family's
    raise RuntimeError("rsgpt4v.families and rsgpt4v.boxfmt disagree on the box styles")


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise BoxFormatError(
            f"unknown model family / box style {name!r}; expected one of: {', '.join(NAMES)}"
        ) from None


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 3136, max_pixels: int = 12845056
) -> tuple[int, int]:
    """(height, width) Qwen2-VL / Qwen2.5-VL's image processor resizes an image to.

    Both sides become multiples of ``factor``, the area stays within [min_pixels, max_pixels],
    and the aspect ratio is kept as closely as that allows (Qwen2-VL's ``smart_resize``).
    """
    if min(height, width) < 1:
        raise BoxFormatError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise BoxFormatError(f"aspect ratio of {width}x{height} exceeds Qwen-VL's limit of 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def processor_budget(image_processor: Any) -> tuple[int | None, int | None, int | None]:
    """(min_pixels, max_pixels, patch factor) of a Qwen-VL image processor (transformers 5
    keeps the pixel counts in ``size`` as ``shortest_edge``/``longest_edge``)."""
    size = getattr(image_processor, "size", None) or {}
    low = size.get("shortest_edge") or getattr(image_processor, "min_pixels", None)
    high = size.get("longest_edge") or getattr(image_processor, "max_pixels", None)
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", None)
    return low, high, patch * merge if patch and merge else None


def pad_colour(image_mean: Sequence[float] | None) -> tuple[int, int, int]:
    """LLaVA's padding colour: the processor's mean, times 255, truncated (``int``)."""
    mean = list(image_mean or (0.0, 0.0, 0.0))[:3]
    return tuple(int(float(v) * 255) for v in mean)  # type: ignore[return-value]


@dataclass(frozen=True)
class BoxConvention:
    """A family with one run's settings: what export writes, finetune trains on, predict
    shows the model and evaluate reads back.

    ``square_pad`` None takes the family's frame (padded for LLaVA-1.5); ``decimals`` None the
    style's precision; ``max_pixels``/``min_pixels``/``patch_factor`` None the family's
    processor defaults (a run's own processor sets them: :meth:`with_processor`).
    """

    family: str = "llava"
    square_pad: bool | None = None
    decimals: int | None = None
    max_pixels: int | None = None
    min_pixels: int | None = None
    patch_factor: int | None = None

    def __post_init__(self) -> None:
        spec = get_family(self.family)
        if self.square_pad and spec.frame == "resize":
            raise BoxFormatError(f"{self.family} resizes the image; it is never padded")
        if self.square_pad and spec.style == "pixel":
            raise BoxFormatError("square_pad applies to normalised box styles, not pixels")
        budget = (self.max_pixels, self.min_pixels, self.patch_factor)
        if any(v is not None for v in budget) and spec.frame != "resize":
            raise BoxFormatError(f"max/min pixels apply to qwen25vl, not {self.family}")
        if self.decimals is not None and not 0 <= self.decimals <= 6:
            raise BoxFormatError(f"box decimals must be 0-6, got {self.decimals}")
        for name in ("max_pixels", "min_pixels", "patch_factor"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BoxFormatError(f"{name} must be positive, got {value}")

    @property
    def spec(self) -> Family:
        return get_family(self.family)

    @property
    def padded(self) -> bool:
        """Whether the model is shown the image on a centred square."""
        if self.square_pad is None:
            return self.spec.frame == "square"
        return self.square_pad

    @property
    def pixel_budget(self) -> tuple[int, int]:
        """(min_pixels, max_pixels) of a resize family."""
        spec = self.spec
        return (
            self.min_pixels or spec.min_pixels or 1,
            self.max_pixels or spec.max_pixels or 1 << 62,
        )

    def shown_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the picture the model is shown for an image of this size."""
        if self.spec.frame == "resize":
            low, high = self.pixel_budget
            factor = self.patch_factor or self.spec.patch_factor
            h, w = smart_resize(height, width, factor, low, high)
            return w, h
        if self.padded:
            side = max(width, height)
            return side, side
        return width, height

    def view(self, width: int, height: int) -> BoxView:
        """How boxes of a ``width`` x ``height`` image are written for this convention."""
        if width < 1 or height < 1:
            raise BoxFormatError(f"image size must be positive, got {width}x{height}")
        return BoxView(self, width, height)

    def as_fields(self) -> dict[str, Any]:
        """The settings as stored in predictions and run files (family as ``box_style``)."""
        fields = asdict(self)
        fields["box_style"] = fields.pop("family")
        fields["box_decimals"] = fields.pop("decimals")
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> BoxConvention:
        """The convention stored by :meth:`as_fields` (missing keys take the defaults)."""
        return cls(
            family=fields.get("box_style") or "llava",
            square_pad=fields.get("square_pad"),
            decimals=fields.get("box_decimals"),
            max_pixels=fields.get("max_pixels"),
            min_pixels=fields.get("min_pixels"),
            patch_factor=fields.get("patch_factor"),
        )

    def flags(self) -> str:
        """The export flags that give this convention (``--boxes llava --no-square-pad``)."""
        parts = [f"--boxes {self.family}"]
        if self.square_pad is not None and self.square_pad != (self.spec.frame == "square"):
            parts.append("--square-pad" if self.square_pad else "--no-square-pad")
        if self.decimals is not None:
            parts.append(f"--box-decimals {self.decimals}")
        if self.max_pixels is not None:
            parts.append(f"--max-pixels {self.max_pixels}")
        if self.min_pixels is not None:
            parts.append(f"--min-pixels {self.min_pixels}")
        return " ".join(parts)

    def code(self) -> str:
        """The Python expression that rebuilds this convention."""
        settings = [repr(self.family)] + [
            f"{key}={value!r}"
            for key, value in asdict(self).items()
            if key != "family" and value is not None
        ]
        return f"BoxConvention({', '.join(settings)})"

    def with_processor(self, image_processor: Any) -> BoxConvention:
        """This convention with a Qwen-VL processor's own pixel budget where none was set."""
        if self.spec.frame != "resize" or image_processor is None:
            return self
        low, high, factor = processor_budget(image_processor)
        return replace(
            self,
            min_pixels=self.min_pixels or low,
            max_pixels=self.max_pixels or high,
            patch_factor=self.patch_factor or factor,
        )


_LIST_OF_REFS = re.compile(r"<ref:(\d+)>((?:(?:,\s*and\s+|,\s*|\s+and\s+)<ref:\d+>)+)")


@dataclass(frozen=True)
class BoxView:
    """One image as a convention's model sees it: renders, parses and round-trips its boxes."""

    convention: BoxConvention
    width: int
    height: int

    @property
    def shown(self) -> tuple[int, int]:
        return self.convention.shown_size(self.width, self.height)

    @property
    def frame(self) -> Frame:
        """Pixels of the file → numbers of the text."""
        spec, (w, h) = self.convention.spec, (self.width, self.height)
        scale = style_scale(spec.style)
        if spec.frame == "resize":
            shown_w, shown_h = self.shown
            return Frame((0.0, float(w), float(shown_w)), (0.0, float(h), float(shown_h)))
        if self.convention.padded:
            side = max(w, h)
            full = float(side) if scale is None else scale
            return Frame(((side - w) // 2, float(side), full), ((side - h) // 2, float(side), full))
        return Frame((0.0, float(w), scale or float(w)), (0.0, float(h), scale or float(h)))

    def render(self, box: Sequence[float], *, angle: float | None = None) -> str:
        """The pixel box ``x1 y1 x2 y2`` of the file as the model writes it."""
        style = self.convention.spec.style
        if style != "geochat":
            angle = None
        return render_box(
            style,
            box,
            self.width,
            self.height,
            angle=angle,
            frame=self.frame,
            decimals=self.convention.decimals,
        )

    def parse(self, text: str) -> list[TextBox]:
        """Every box in ``text``, in pixels of the file."""
        return parse_boxes(
            self.convention.spec.style, text, self.width, self.height, frame=self.frame
        )

    def round_trip(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """The box a perfect model of this convention answers for ``box`` (its grid's best)."""
        (found,) = self.parse(self.render(box))
        return found.x1, found.y1, found.x2, found.y2

    def quantisation(self) -> tuple[float, float]:
        """Largest render-then-parse error in pixels of the file (x, y)."""
        spec = self.convention.spec
        return quantisation(
            spec.style, self.width, self.height, frame=self.frame, decimals=self.convention.decimals
        )

    def render_text(
        self,
        text: str,
        box_of: Callable[[str], tuple[Sequence[float] | str, float | None, str | None]],
        *,
        answer: bool = False,
    ) -> str:
        """``text`` with every ``<ref:N>`` written as region N's box.

        ``box_of(N)`` gives the region's pixel box (or its outline already written, a string),
        angle and category. In answers the family's
        phrase markers (or Qwen2.5-VL's ``label``) name the category; questions get bare boxes,
        so a question never gives its answer away. Qwen2.5-VL writes a list of objects as one
        JSON list, as its cookbook's answers do.
        """
        spec = self.convention.spec
        if spec.json_label:
            text = _LIST_OF_REFS.sub(lambda m: self._json_list(m, box_of, answer), text)

        def one(match: re.Match[str]) -> str:
            box, angle, category = box_of(match.group(1))
            rendered = box if isinstance(box, str) else self.render(box, angle=angle)
            if not answer or not category:
                return rendered
            if spec.json_label:
                return rendered[:-1] + f', "label": {_json_string(category)}}}'
            if spec.phrase is not None:
                return f"{spec.phrase[0]}{category}{spec.phrase[1]}{rendered}"
            return rendered

        return REF.sub(one, text)

    def _json_list(
        self,
        match: re.Match[str],
        box_of: Callable[[str], tuple[Sequence[float], float | None, str | None]],
        answer: bool,
    ) -> str:
        objects = []
        for key in REF.findall(match.group(0)):
            box, _, category = box_of(key)
            rendered = self.render(box)
            if answer and category:
                rendered = rendered[:-1] + f', "label": {_json_string(category)}}}'
            objects.append(rendered)
        return "[" + ", ".join(objects) + "]"


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
