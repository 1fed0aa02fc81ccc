"""What every rule task shares: building an instruction, grouping objects, listing refs."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.schema import Instruction, Message, Object, Record, Region, Source, trusted


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond its record.

    ``vocabulary`` maps a dataset name to its class strings (the converter's class list plus
    every class seen in the input), for negative and multiple-choice questions; ``image_root``
    is where record image paths resolve, for rules that read pixels.
    """

    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    image_root: Path | None = None

    def classes(self, record: Record) -> tuple[str, ...]:
        """The class vocabulary of the record's dataset (its own classes when unknown)."""
        return self.vocabulary.get(record.dataset) or tuple(
            sorted({o.category for o in record.objects})
        )


TaskFunction = Callable[[Record, random.Random, RuleContext], Iterator[Instruction]]


def make_instruction(
    record: Record,
    task: str,
    index: int,
    template: str,
    turns: list[tuple[str, str]],
    objects: Iterable[Object] = (),
) -> Instruction:
    """An instruction of one or more (question, answer) turns; ``<image>`` opens the first.

    Built without validation (:func:`rsgpt4v.schema.trusted`): the record was validated when
    read, and the rules only combine its values with their own text. Rules run millions of
    times, so this is the hot path of ``instruct``.
    """
    messages = []
    for turn, (question, answer) in enumerate(turns):
        content = f"<image>\n{question}" if turn == 0 else question
        messages.append(trusted(Message, role="user", content=content))
        messages.append(trusted(Message, role="assistant", content=answer))
    regions = {str(o.id): trusted(Region, bbox=o.bbox, polygon=o.polygon) for o in objects}
    return trusted(
        Instruction,
        id=f"{record.id}#{task}-{index}",
        record_id=record.id,
        image=record.image.path,
        image_size=[record.image.width, record.image.height],
        task=task,
        source=trusted(Source, generator="rules", template=template),
        messages=messages,
        regions=regions,
    )


def objects_by_category(record: Record) -> dict[str, list[Object]]:
    """Objects grouped by class, or nothing when the labels cannot be trusted to be complete."""
    if not record.labelled or record.meta.get("skipped_objects"):
        return {}
    groups: dict[str, list[Object]] = defaultdict(list)
    for obj in record.objects:
        groups[obj.category].append(obj)
    return dict(sorted(groups.items()))


def join_refs(objects: Iterable[Object]) -> str:
    """``<ref:0>``, ``<ref:0> and <ref:3>``, ``<ref:0>, <ref:2> and <ref:3>``."""
    refs = [f"<ref:{o.id}>" for o in objects]
    return refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1]
