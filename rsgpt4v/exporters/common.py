"""What every export format shares: box rendering, turn checks, image paths, atomic writers.

Formats differ only in the shape of one item and the file around it; everything that decides
what an item *says* (boxes in the target style, which turns are allowed, where the image is) is
here once, so the formats cannot drift apart.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rsgpt4v.atomic import atomic_text  # re-exported: the exporters write through it
from rsgpt4v.errors import InputError
from rsgpt4v.families import BoxConvention
from rsgpt4v.geometry import box_fill, polygon_to_obb
from rsgpt4v.paths import ImageRoot
from rsgpt4v.problems import Problem
from rsgpt4v.schema import Instruction, Message

IMAGE_TOKEN = "<image>"
PIXEL_STYLES = ("qwen25vl", "pixel")
WEB_IMAGES = (".png", ".jpg", ".jpeg")  # files every trainer's PIL opens as they are


@dataclass(frozen=True)
class ExportOptions:
    """The choices of one export run (the CLI flags)."""

    boxes: BoxConvention = field(default_factory=BoxConvention)
    image_root: Path | None = None
    embed_images: bool = False
    image_url_prefix: str | None = None
    max_side: int | None = 1024
    render_images: Path | None = None


@dataclass(frozen=True)
class ImageRef:
    """An instruction's image: the path written into the training file, and the file on disk.

    ``written`` is relative to the output's folder when an image root is given (what LLaVA's
    ``image_folder`` and LLaMA-Factory's ``media_dir`` expect), else the dataset-relative path.
    ``file`` is None without an image root.
    """

    dataset_path: str
    written: str
    file: Path | None


@dataclass
class ExportSummary:
    """What was written, with the counts the dataset card reports."""

    output: Path
    written: int = 0
    per_task: Counter[str] = field(default_factory=Counter)
    per_dataset: Counter[str] = field(default_factory=Counter)
    per_source: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejects: list[Problem] = field(default_factory=list)
    rejects_file: Path | None = None
    side_files: list[Path] = field(default_factory=list)
    images_rendered: int = 0  # --render-images: copies written, and copies found up to date
    # questions about thin oblique objects in a style with no oriented box: left out on purpose,
    # listed in OUTPUT.not-written.jsonl
    not_written: list[Problem] = field(default_factory=list)
    not_written_file: Path | None = None

    @property
    def oblique_skipped(self) -> int:
        return len(self.not_written)

    images_reused: int = 0

    def add(self, instruction: Instruction) -> None:
        self.written += 1
        self.per_task[instruction.task] += 1
        self.per_dataset[dataset_of(instruction)] += 1
        self.per_source[(instruction.source.generator, instruction.source.template)] += 1


def dataset_of(instruction: Instruction) -> str:
    """The source dataset, from the record id (``DATASET/SPLIT/NAME``, DESIGN.md)."""
    return instruction.record_id.split("/", 1)[0]


#: Below this share of its box (rsgpt4v.geometry.box_fill), an object is thin and oblique: a
#: question that points at its axis-aligned box points mostly at other things. A 3:1 rectangle at
#: 45° fills 0.375 of its box, a 4:1 one 0.32; a 150 x 4 m pier at 45°, 0.05.
THIN_OBLIQUE_FILL = 0.35
#: Box styles that write an oriented region: geochat's angle, pixel's polygon
ORIENTED_STYLES = frozenset({"geochat", "pixel"})


class ObliqueRegion(ValueError):
    """A question points at a thin oblique object, and the box style has no oriented form."""


def render_refs(
    text: str,
    instruction: Instruction,
    boxes: BoxConvention | str,
    *,
    answer: bool = False,
    shown_size: tuple[int, int] | None = None,
) -> str:
    """Replace every ``<ref:N>`` with region N's box as the model family writes it.

    ``answer``: the text is the model's own turn, where families that name the object of a box
    do so (:meth:`rsgpt4v.families.BoxView.render_text`). ``shown_size`` is the (width, height)
    of a downscaled copy the model is shown instead of the instruction's image: boxes are
    scaled to it, so pixel styles stay true.

    In a question, a region whose object fills less than :data:`THIN_OBLIQUE_FILL` of its box is
    written in its oriented form (geochat's angle; the pixel style's polygon); other styles have
    none, and raise :class:`ObliqueRegion` (the export skips the instruction and counts it).
    """
    convention = BoxConvention(boxes) if isinstance(boxes, str) else boxes
    width, height = instruction.image_size
    shown_width, shown_height = shown_size or (width, height)
    sx, sy = shown_width / width, shown_height / height

    def box_of(key: str) -> tuple[tuple[float, ...] | str, float | None, str | None]:
        region = instruction.regions.get(key)
        if region is None:
            raise ValueError(f"refers to region {key}, which is not in its regions")
        if not answer and region.polygon is not None and convention.family != "geochat":
            fill = box_fill(region.polygon)
            if fill < THIN_OBLIQUE_FILL and convention.spec.style == "pixel":
                return _polygon_text(region.polygon, sx, sy), None, None
            if fill < THIN_OBLIQUE_FILL:
                raise ObliqueRegion(
                    f"region {key} is a thin oblique object (it fills {fill:.0%} of its box); "
                    f"{convention.family} boxes have no oriented form"
                )
        x, y, w, h = region.bbox
        angle = None
        if convention.family == "geochat" and region.polygon is not None:
            angle = polygon_to_obb(region.polygon)[4]
        return (x * sx, y * sy, (x + w) * sx, (y + h) * sy), angle, region.category

    view = convention.view(shown_width, shown_height)
    return view.render_text(text, box_of, answer=answer)


def _polygon_text(polygon: list[list[float]], sx: float, sy: float) -> str:
    """An outline in pixels, as the pixel style writes a region that needs its orientation."""
    corners = ", ".join(f"[{round(x * sx)}, {round(y * sy)}]" for x, y in polygon)
    return f"[{corners}]"


def conversation(
    instruction: Instruction,
    options: ExportOptions,
    *,
    shown_size: tuple[int, int] | None = None,
    system: bool = True,
) -> list[Message]:
    """The turns with boxes rendered and the ``<image>`` token removed.

    Checked the way training code reads a conversation: an optional system turn first (only where
    ``system`` is allowed), then user and assistant alternating from a user turn to an assistant
    turn; the image token at most once, in the first user turn. Each format puts the image back
    in its own convention. Raises ValueError, which the stage turns into a reject.
    """
    messages = list(instruction.messages)
    turns = []
    if messages[0].role == "system":
        if not system:
            raise ValueError("this format has no system turns")
        turns.append(Message(role="system", content=messages.pop(0).content))
    if not messages or messages[-1].role != "assistant":
        raise ValueError("the conversation must end with an assistant turn")
    for turn, message in enumerate(messages):
        expected = "user" if turn % 2 == 0 else "assistant"
        if message.role != expected:
            raise ValueError(f"turn {turn} is {message.role}, expected {expected}")
        tokens = message.content.count(IMAGE_TOKEN)
        if tokens > 1 or (tokens and turn > 0):
            where = "the first turn holds more than one" if turn == 0 else f"turn {turn} holds an"
            raise ValueError(f"{where} {IMAGE_TOKEN} token")
        text = message.content.replace(IMAGE_TOKEN, "").strip() if tokens else message.content
        content = render_refs(
            text,
            instruction,
            options.boxes,
            answer=message.role == "assistant",
            shown_size=shown_size,
        )
        turns.append(Message(role=message.role, content=content))
    return turns


def with_image_token(turns: list[Message]) -> list[Message]:
    """``<image>`` once, at the start of the first user turn (LLaVA, LLaMA-Factory, Parquet)."""
    first = next(i for i, turn in enumerate(turns) if turn.role == "user")
    out = list(turns)
    out[first] = Message(role="user", content=IMAGE_TOKEN + "\n" + turns[first].content)
    return out


def resolve_image(instruction: Instruction, root: Path | None, out_dir: Path) -> ImageRef:
    """Where the image is; with a root it must exist inside it. Raises ValueError if not."""
    if root is None:
        return ImageRef(instruction.image, instruction.image, None)
    try:
        path = ImageRoot(root).existing(instruction.image).resolve()
    except InputError as error:
        raise ValueError(f"{error.reason}: {instruction.image!r}") from None
    written = Path(os.path.relpath(path, out_dir.resolve())).as_posix()
    return ImageRef(instruction.image, written, path)


def write_json_array(items: Iterable[dict[str, object]], output: Path) -> None:
    """A JSON array written item by item (never held whole), renamed into place at the end."""
    with atomic_text(output) as handle:
        handle.write("[")
        for n, item in enumerate(items):
            handle.write(("\n" if n == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
        handle.write("\n]\n")


def write_json_lines(items: Iterable[dict[str, object]], output: Path) -> None:
    """One JSON object per line, renamed into place at the end."""
    with atomic_text(output) as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


class Exporter:
    """One training format: the shape of an item and the file (and side files) that hold them.

    The stage streams instructions through :meth:`item` (a ValueError rejects one instruction)
    into :meth:`write`, then calls :meth:`finish` for side files written from the counts.
    """

    NAME: ClassVar[str]

    def __init__(self, options: ExportOptions, output: Path) -> None:
        self.options = options
        self.output = output

    def check(self) -> None:
        """Refuse, before anything is written, what would otherwise fail at the end."""

    def item(self, instruction: Instruction, image: ImageRef) -> dict[str, object]:
        raise NotImplementedError

    def write(self, items: Iterator[dict[str, object]]) -> None:
        write_json_array(items, self.output)

    def finish(self, summary: ExportSummary) -> list[Path]:
        """Side files written after the items; returns their paths."""
        return []
