"""What every rule task shares: building an instruction, grouping objects, listing refs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rsgpt4v.instruct.rules.task_random import TaskRandom
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


class Draft(NamedTuple):
    """What a rule decided about one instruction, before it becomes a model or a JSON line.

    Rules yield drafts; :func:`make_instruction` turns one into an :class:`Instruction` and
    :mod:`rsgpt4v.instruct.lines` writes it straight to its JSON line (the same bytes), so the
    instruct stage does not build a model per instruction. ``objects`` are the record objects
    whose boxes the instruction carries as regions; ``source_extra`` are further provenance
    fields (``qa_type``).
    """

    task: str
    index: int
    template: str
    turns: list[tuple[str, str]]
    objects: Sequence[Object] = ()
    source_extra: Mapping[str, str] | None = None


TaskFunction = Callable[[Record, TaskRandom, RuleContext], Iterator[Draft]]


def make_instruction(record: Record, draft: Draft) -> Instruction:
    """The instruction of a draft: one or more (question, answer) turns, ``<image>`` first.

    Built without validation (:func:`rsgpt4v.schema.trusted`): the record was validated when
    read, and the rules only combine its values with their own text.
    """
    messages = []
    for turn, (question, answer) in enumerate(draft.turns):
        content = f"<image>\n{question}" if turn == 0 else question
        messages.append(trusted(Message, role="user", content=content))
        messages.append(trusted(Message, role="assistant", content=answer))
    regions = {
        str(o.id): trusted(Region, bbox=o.bbox, polygon=o.polygon, category=o.category)
        for o in draft.objects
    }
    source = trusted(Source, generator="rules", template=draft.template)
    if draft.source_extra:
        source = Source(generator="rules", template=draft.template, **draft.source_extra)
    return trusted(
        Instruction,
        id=f"{record.id}#{draft.task}-{draft.index}",
        record_id=record.id,
        image=record.image.path,
        image_size=[record.image.width, record.image.height],
        task=draft.task,
        source=source,
        messages=messages,
        regions=regions,
    )


def labels_are_complete(record: Record) -> bool:
    """True when the objects are every object of the image, so counts and absences are facts.

    Not so for unlabelled images, images that lost objects to --skip-bad, referring-expression
    sets that label only some objects (``objects_exhaustive: false``) and COCO crowd regions
    (one region, many objects).
    """
    meta = record.meta
    return (
        record.labelled
        and not meta.get("skipped_objects")
        and meta.get("objects_exhaustive", True) is not False
        and not meta.get("crowd_regions")
    )


_groups: tuple[Record, dict[str, list[Object]]] | None = None


def objects_by_category(record: Record) -> dict[str, list[Object]]:
    """Objects grouped by class, or nothing when the labels cannot be trusted to be complete.

    Several rule tasks ask for the same record in a row, so the grouping of the last record
    asked about is kept (matched by identity; records are not changed after reading). The
    result is shared: callers must not change it.
    """
    global _groups
    if _groups is not None and _groups[0] is record:
        return _groups[1]
    groups: dict[str, list[Object]] = defaultdict(list)
    if labels_are_complete(record):
        for obj in record.objects:
            groups[obj.category].append(obj)
    _groups = (record, dict(sorted(groups.items())))
    return _groups[1]


def join_refs(objects: Iterable[Object]) -> str:
    """``<ref:0>``, ``<ref:0> and <ref:3>``, ``<ref:0>, <ref:2> and <ref:3>``."""
    refs = [f"<ref:{o.id}>" for o in objects]
    return refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1]
