"""The ``export`` stage: instructions → training files, boxes rendered in the target's style.

Instructions keep boxes as data (``<ref:N>`` + regions); only here do they become text, in the
convention of the model to be trained (``--boxes llava|qwen2vl|…``, see :mod:`rsgpt4v.boxfmt`).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.boxfmt import STYLES, render_box
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import polygon_to_obb
from rsgpt4v.problems import Problem, ProblemLog, write_rejects
from rsgpt4v.schema import Instruction, count_lines, read_jsonl

FORMATS = ("llava",)
IMAGE_TOKEN = "<image>"
REF = re.compile(r"<ref:(\d+)>")
PIXEL_STYLES = ("qwen25vl", "pixel")
LLAVA_ROLES = {"user": "human", "assistant": "gpt"}


@dataclass
class ExportSummary:
    output: Path
    written: int = 0
    per_task: Counter[str] = field(default_factory=Counter)
    rejects: list[Problem] = field(default_factory=list)
    rejects_file: Path | None = None


def render_refs(
    text: str, instruction: Instruction, style: str, *, square_pad: bool = False
) -> str:
    """Replace every ``<ref:N>`` with region N's box in the given style."""
    width, height = instruction.image_size

    def box_text(match: re.Match[str]) -> str:
        region = instruction.regions.get(match.group(1))
        if region is None:
            raise ValueError(f"refers to region {match.group(1)}, which is not in its regions")
        x, y, w, h = region.bbox
        angle = None
        if style == "geochat" and region.polygon is not None:
            angle = polygon_to_obb(region.polygon)[4]
        box = (x, y, x + w, y + h)
        return render_box(style, box, width, height, angle=angle, square_pad=square_pad)

    return REF.sub(box_text, text)


def to_llava(
    instruction: Instruction, style: str, image: str, *, square_pad: bool = False
) -> dict[str, object]:
    """One LLaVA conversation; ``<image>`` exactly once, at the start of the first human turn."""
    if instruction.messages[0].role != "user":
        raise ValueError("the conversation must open with a user turn")
    conversations = []
    for turn, message in enumerate(instruction.messages):
        if message.role not in LLAVA_ROLES:
            raise ValueError(f"LLaVA has no {message.role} turns")
        expected = "user" if turn % 2 == 0 else "assistant"
        if message.role != expected:
            raise ValueError(f"turn {turn} is {message.role}, expected {expected}")
        content = render_refs(message.content, instruction, style, square_pad=square_pad)
        if turn == 0:
            if content.count(IMAGE_TOKEN) > 1:
                raise ValueError("the first turn holds more than one <image>")
            content = IMAGE_TOKEN + "\n" + content.replace(IMAGE_TOKEN, "").lstrip("\n")
        elif IMAGE_TOKEN in content:
            raise ValueError(f"turn {turn} holds an <image> token")
        conversations.append({"from": LLAVA_ROLES[message.role], "value": content})
    return {"id": instruction.id, "image": image, "conversations": conversations}


def export_instructions(
    instructions_path: str | Path,
    output: str | Path,
    *,
    fmt: str = "llava",
    boxes: str = "llava",
    image_root: str | Path | None = None,
    square_pad: bool = False,
    skip_bad: bool = False,
    progress: Callable[[Iterable[Instruction], int | None], Iterable[Instruction]] | None = None,
) -> ExportSummary:
    """Write instructions as a training file.

    With ``image_root`` (the folder the records' image paths are relative to), every image must
    exist and is written relative to the output's folder, the layout LLaVA's ``image_folder``
    expects; without it the dataset-relative paths are written unchecked. ``square_pad``
    normalises boxes to the image padded to a centred square (LLaVA-1.5 with
    ``image_aspect_ratio: pad``).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if boxes not in STYLES:
        raise InputError(f"unknown box style {boxes!r}; known: {', '.join(STYLES)}")
    if square_pad and boxes in PIXEL_STYLES:
        raise InputError(f"--square-pad applies to normalised box styles, not {boxes!r}")
    output = Path(output)
    root = Path(image_root) if image_root is not None else None
    if root is not None and not root.is_dir():
        raise InputError("image root is not a folder", file=root)
    log = ProblemLog(skip_bad=skip_bad)
    summary = ExportSummary(output=output)
    instructions: Iterable[Instruction] = read_jsonl(instructions_path, Instruction)
    if progress is not None:
        instructions = progress(instructions, count_lines(instructions_path))
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            handle.write("[")
            for instruction in instructions:
                item = _export_one(
                    instruction, boxes, square_pad, root, output.parent, log, instructions_path
                )
                if item is None:
                    continue
                handle.write(("\n" if summary.written == 0 else ",\n") + json.dumps(item))
                summary.written += 1
                summary.per_task[instruction.task] += 1
            handle.write("\n]\n")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    summary.rejects = log.problems
    summary.rejects_file = write_rejects(output, log.problems)
    return summary


def _export_one(
    instruction: Instruction,
    boxes: str,
    square_pad: bool,
    root: Path | None,
    out_dir: Path,
    log: ProblemLog,
    source: str | Path,
) -> dict[str, object] | None:
    image = instruction.image
    if root is not None:
        path = root / instruction.image
        if not path.is_file():
            log.reject("image not found under the image root", source, value=str(path))
            return None
        image = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
    try:
        return to_llava(instruction, boxes, image, square_pad=square_pad)
    except ValueError as error:
        log.reject(f"instruction {instruction.id}: {error}", source)
        return None
