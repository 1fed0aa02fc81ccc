"""Evaluation items from an exported training file (LLaVA JSON, ShareGPT JSON / JSONL).

An export has rendered its boxes as text, so they are read back with the export's own box style
(``boxfmt.parse_boxes``, exact up to the style's rounding), and the image size comes from the
image file. rsgpt4v's LLaVA export keeps the instruction id (``DATASET/SPLIT/NAME#task-N``), which
gives the record, the split and the task, so a held-out split is scored task by task as from the
instructions file. Items without such an id (ShareGPT has none) are scored as free text (task
``conversation``) and belong to no split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from rsgpt4v.errors import BoxFormatError, InputError
from rsgpt4v.evaluate.normalize import parse_number
from rsgpt4v.evaluate.references import (
    IMAGE_TOKEN,
    TASK_FAMILIES,
    EvalItem,
    class_of_answer,
    split_of,
)
from rsgpt4v.families import BoxConvention
from rsgpt4v.paths import ImageRoot

INSTRUCTION_ID = re.compile(r"^(?P<record>.+)#(?P<task>[A-Za-z_]+)-\d+$")
UNKNOWN_TASK = "conversation"


def _image_size(image_root: ImageRoot, image: str, entry: str) -> list[int]:
    from PIL import Image, UnidentifiedImageError

    path = image_root.existing(image, entry=entry)
    try:
        with Image.open(path) as opened:
            return list(opened.size)
    except (OSError, UnidentifiedImageError):
        from rsgpt4v.raster import describe_raster

        facts = describe_raster(path)  # GeoTIFFs and other rasters PIL cannot open
        return [facts.width, facts.height]


def items_from_export(
    path: str | Path,
    *,
    boxes: BoxConvention,
    image_root: str | Path | None,
    split: str | None = None,
) -> Iterator[EvalItem]:
    """Items of the first turn of each conversation of the split (all with None)."""
    from rsgpt4v.validate.importer import detect_format, read_conversations

    path = Path(path)
    fmt = detect_format(path)
    if fmt == "instructions":
        raise InputError("this is an instructions file: use --benchmark instructions", file=path)
    if image_root is None:
        raise InputError("--image-root is needed to read the image sizes of an export", file=path)
    root = ImageRoot(Path(image_root))  # a folder, or an error naming it
    for conversation in read_conversations(path, fmt):
        if conversation.problem is not None:
            raise InputError(conversation.problem, file=path, line=conversation.line)
        named = INSTRUCTION_ID.match(conversation.id)
        record_id = named.group("record") if named else conversation.id
        if split is not None and (not named or split_of(record_id) != split):
            continue
        turns = [m for m in conversation.messages if m["role"] != "system"]
        if len(turns) < 2 or turns[0]["role"] != "user" or turns[1]["role"] != "assistant":
            continue
        task = named.group("task") if named else UNKNOWN_TASK
        answer = turns[1]["content"].strip()
        size = _image_size(root, conversation.image, conversation.id)
        item = EvalItem(
            id=conversation.id,
            record_id=record_id,
            image=conversation.image,
            image_size=size,
            task=task,
            metric=TASK_FAMILIES.get(task, "caption"),
            question_type="presence" if task == "presence" else None,
            question=turns[0]["content"].replace(IMAGE_TOKEN, "").strip(),
            references=[answer],
            benchmark="export",
        )
        if item.metric == "grounding":
            try:
                found = boxes.view(*size).parse(answer)
            except BoxFormatError as error:
                raise InputError(str(error), file=path, line=conversation.line) from None
            item.boxes = [[b.x1, b.y1, b.x2, b.y2] for b in found]
            if not item.boxes:
                continue
        elif item.metric == "counting":
            item.count = parse_number(answer)
            if item.count is None:
                continue
        elif item.metric == "classification":
            item.label = class_of_answer(answer)
        yield item
