"""LLaVA: one JSON array of ``{"id", "image", "conversations": [{"from", "value"}]}``.

The layout of LLaVA-1.5's ``llava_v1_5_mix665k.json``: ``human`` and ``gpt`` turns, ``<image>``
exactly once, at the start of the first human turn; ``image`` is relative to ``image_folder``.
"""

from __future__ import annotations

from rsgpt4v.exporters.common import (
    Exporter,
    ExportOptions,
    ImageRef,
    conversation,
    with_image_token,
)
from rsgpt4v.families import BoxConvention
from rsgpt4v.schema import Instruction

LLAVA_ROLES = {"user": "human", "assistant": "gpt"}


def to_llava(instruction: Instruction, boxes: BoxConvention | str, image: str) -> dict[str, object]:
    """One LLaVA conversation; raises ValueError for a conversation LLaVA cannot train on."""
    options = ExportOptions(boxes=BoxConvention(boxes) if isinstance(boxes, str) else boxes)
    turns = with_image_token(conversation(instruction, options, system=False))
    return {
        "id": instruction.id,
        "image": image,
        "conversations": [{"from": LLAVA_ROLES[t.role], "value": t.content} for t in turns],
    }


class LlavaExporter(Exporter):
    NAME = "llava"

    def item(self, instruction: Instruction, image: ImageRef) -> dict[str, object]:
        return to_llava(instruction, self.options.boxes, image.written)
