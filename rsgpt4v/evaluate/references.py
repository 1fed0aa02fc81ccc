"""Evaluation items: what a model is asked, what counts as right, and how it is scored.

An item is one question about one image with its reference answer(s) and, by task, the true
boxes (grounding, pixel ``x1 y1 x2 y2`` from the instruction's regions), the true count or the
true class. Boxes stay data here as in instructions: question and references keep ``<ref:N>``
placeholders, rendered in the evaluated model's box style only when it is prompted and scored.
Items come from a held-out split of an instructions file (:func:`items_from_instructions`) or
from a benchmark adapter (:mod:`rsgpt4v.evaluate.benchmarks`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rsgpt4v.errors import InputError
from rsgpt4v.evaluate.normalize import parse_number
from rsgpt4v.families import BoxConvention
from rsgpt4v.schema import REF, Instruction, Region, read_jsonl

MetricFamily = Literal["caption", "vqa", "grounding", "counting", "classification"]
FAMILIES: tuple[str, ...] = ("caption", "vqa", "grounding", "counting", "classification")
# How each rule task is scored; any other task (descriptions, relations, dialogue…) is scored
# as free text with the caption metrics.
TASK_FAMILIES: dict[str, str] = {
    "brief_caption": "caption",
    "vqa": "vqa",
    "presence": "vqa",
    "grounding": "grounding",
    "counting": "counting",
    "classification": "classification",
}
IMAGE_TOKEN = "<image>"


class EvalItem(BaseModel):
    """One question to answer, with everything needed to score the answer."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    record_id: str
    image: str = Field(description="Image path relative to the dataset root.")
    image_size: list[int] = Field(min_length=2, max_length=2, description="[width, height].")
    task: str = Field(description="Instruction task or benchmark task; results group by it.")
    metric: MetricFamily
    question_type: str | None = Field(default=None, description="VQA question type.")
    question: str = Field(description="The question; boxes as <ref:N>.")
    references: list[str] = Field(min_length=1, description="Reference answers; boxes as <ref:N>.")
    regions: dict[str, Region] = Field(default_factory=dict)
    boxes: list[list[float]] = Field(default_factory=list, description="True x1 y1 x2 y2 pixels.")
    count: float | None = None
    label: str | None = Field(default=None, description="True class (classification).")
    benchmark: str | None = None


def render_text(text: str, item: EvalItem, boxes: BoxConvention, *, answer: bool = False) -> str:
    """``text`` with every ``<ref:N>`` written as region N's box in the family's convention.

    ``answer``: the text is what the model should answer (a reference), with the family's
    phrase markers; a question gets bare boxes.
    """

    def box_of(key: str) -> tuple[list[float], None, str | None]:
        region = item.regions.get(key)
        if region is None:
            raise InputError(f"item {item.id} refers to region {key}, not in its regions")
        x, y, w, h = region.bbox
        return [x, y, x + w, y + h], None, region.category

    return boxes.view(*item.image_size).render_text(text, box_of, answer=answer)


def item_from_instruction(instruction: Instruction) -> EvalItem | None:
    """The item of an instruction's first turn, or None when it has no user-assistant pair.

    Later turns of a dialogue depend on the earlier answers, so only the first is asked.
    """
    turns = [m for m in instruction.messages if m.role != "system"]
    if len(turns) < 2 or turns[0].role != "user" or turns[1].role != "assistant":
        return None
    question = turns[0].content.replace(IMAGE_TOKEN, "").strip()
    answer = turns[1].content.strip()
    family = TASK_FAMILIES.get(instruction.task, "caption")
    item = EvalItem(
        id=instruction.id,
        record_id=instruction.record_id,
        image=instruction.image,
        image_size=instruction.image_size,
        task=instruction.task,
        metric=family,
        question_type=getattr(instruction.source, "qa_type", None)
        or ("presence" if instruction.task == "presence" else None),
        question=question,
        references=[answer],
        regions=instruction.regions,
    )
    if family == "grounding":
        item.boxes = [
            _xyxy(instruction.regions[n]) for n in REF.findall(answer) if n in instruction.regions
        ]
        if not item.boxes:
            return None
    elif family == "counting":
        item.count = parse_number(answer)
        if item.count is None:
            return None
    elif family == "classification":
        item.label = class_of_answer(answer)
    return item


def _xyxy(region: Region) -> list[float]:
    x, y, w, h = region.bbox
    return [x, y, x + w, y + h]


@cache
def _class_answer_patterns() -> tuple[re.Pattern[str], ...]:
    """Regexes of the classification answer phrasings, capturing the label."""
    from rsgpt4v.instruct.phrasing import load_pool

    patterns = []
    answers = load_pool("classification").answers.values()
    templates = [t for value in answers for t in ([value] if isinstance(value, str) else value)]
    for template in templates:
        regex = ""
        for index, part in enumerate(re.split(r"\{(label|letter)\}", template)):
            if index % 2 == 0:
                regex += re.escape(part)
            else:
                regex += "(?P<label>.+?)" if part == "label" else "[A-Z]"
        patterns.append(re.compile(f"^{regex}$"))
    return tuple(patterns)


def class_of_answer(answer: str) -> str:
    """The class named by a rule classification answer (the whole answer when none matches)."""
    for pattern in _class_answer_patterns():
        match = pattern.match(answer.strip())
        if match:
            return match.group("label").strip()
    return answer.strip()


def split_of(record_id: str) -> str | None:
    """The split in a record id ``DATASET/SPLIT/NAME`` (DESIGN.md)."""
    parts = record_id.split("/")
    return parts[1] if len(parts) >= 3 else None


def items_from_instructions(
    path: str | Path, *, split: str | None = None, tasks: Sequence[str] | None = None
) -> Iterator[EvalItem]:
    """Items of the instructions of one split (all with None), optionally of some tasks only."""
    for instruction in read_jsonl(path, Instruction):
        if split is not None and split_of(instruction.record_id) != split:
            continue
        if tasks and instruction.task not in tasks:
            continue
        item = item_from_instruction(instruction)
        if item is not None:
            item.benchmark = "instructions"
            yield item
