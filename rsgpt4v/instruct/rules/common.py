"""What every rule task shares: building an instruction, grouping objects, listing refs."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.instruct.answerability import MAX_COUNT, MIN_VISIBLE_PX, ModelInput, visible
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.label_facts import labels_are_complete
from rsgpt4v.schema import Instruction, Message, Object, Record, Region, Source, trusted
from rsgpt4v.vocabulary import declared_completeness


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond its record.

    ``vocabulary`` maps a dataset name to its class strings (the converter's class list plus
    every class seen in the input), for negative and multiple-choice questions; ``image_root``
    is where record image paths resolve, for rules that read pixels; ``completeness`` which
    classes each dataset labels exhaustively (:mod:`rsgpt4v.completeness`; a dataset missing
    here is taken as exhaustive); ``model_input`` the picture the model will be shown
    (:mod:`rsgpt4v.instruct.answerability`). ``skips`` counts what rules left unasked and why,
    for the stage's summary.
    """

    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    image_root: Path | None = None
    completeness: Mapping[str, LabelCompleteness] = field(default_factory=dict)
    model_input: ModelInput = field(default_factory=ModelInput)
    skips: Counter[str] = field(default_factory=Counter, compare=False)

    def classes(self, record: Record) -> tuple[str, ...]:
        """The class vocabulary of the record's dataset (its own classes when unknown)."""
        return self.vocabulary.get(record.dataset) or tuple(
            sorted({o.category for o in record.objects})
        )

    def labelling(self, record: Record) -> LabelCompleteness:
        """The record's dataset's completeness: the run's table, else its converter's."""
        found = self.completeness.get(record.dataset)
        return found if found is not None else declared_completeness(record.dataset)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skips[reason] += count


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


@dataclass(frozen=True)
class ClassFacts:
    """What may be said about one labelled class of one image.

    ``exhaustive``: every instance of the class is labelled (so "no" and exact counts are
    facts); ``visible``: each labelled instance stays at least ``MIN_VISIBLE_PX`` across at the
    model's input.
    """

    category: str
    objects: list[Object]
    exhaustive: bool
    visible: bool

    @property
    def count_form(self) -> str | None:
        """``exact``, ``at_least`` (labels may miss some) or None (not countable at this input)."""
        if not self.visible or len(self.objects) > MAX_COUNT:
            return None
        return "exact" if self.exhaustive else "at_least"


@dataclass(frozen=True)
class Knowledge:
    """What a record's labels let a rule state truthfully, at the model's input.

    ``classes`` holds every labelled class (sorted); ``scale`` is model-input pixels per image
    pixel (None: not known, sizes not judged); ``scene_questions`` is False for a tile that
    repeats an overlapping tile's objects (``meta.repeats``): counts, lists and descriptions are
    asked of that other tile.
    """

    record: Record
    classes: dict[str, ClassFacts]
    scale: float | None
    scene_questions: bool
    absence_known: bool  # "there is no X" may be said of exhaustive classes absent here
    hidden: frozenset[int] = frozenset()  # id() of the record's objects too small to ask about

    def visible(self, obj: Object) -> bool:
        return id(obj) not in self.hidden

    def visible_objects(self) -> list[Object]:
        return [o for o in self.record.objects if id(o) not in self.hidden]

    def countable(self) -> dict[str, ClassFacts]:
        """Classes whose count may be stated (exactly or as "at least")."""
        return {c: f for c, f in self.classes.items() if f.count_form is not None}

    def complete(self) -> dict[str, ClassFacts]:
        """Classes whose exact count may be stated: exhaustive, visible and few enough."""
        return {c: f for c, f in self.classes.items() if f.count_form == "exact"}

    def may_call_absent(self, category: str, context: RuleContext) -> bool:
        """Whether "there is no ``category``" is a fact of this image at the model's input."""
        return self.absence_known and context.labelling(self.record).exhaustive(category)


_knowledge: tuple[Record, RuleContext, Knowledge] | None = None


def knowledge(record: Record, context: RuleContext) -> Knowledge:
    """The record's :class:`Knowledge` under the context's completeness and model input.

    Kept for the last record asked (by identity), like :func:`objects_by_category`: every rule
    task of a record asks for it in a row.
    """
    global _knowledge
    if _knowledge is not None and _knowledge[0] is record and _knowledge[1] is context:
        return _knowledge[2]
    labelling = context.labelling(record)
    complete_labels = labels_are_complete(record)
    scale = context.model_input.scale(record.image.width, record.image.height)
    groups: dict[str, list[Object]] = defaultdict(list)
    if record.labelled and not record.meta.get("crowd_regions"):
        for obj in record.objects:
            groups[obj.category].append(obj)
    # what the labels may leave out (objects under min_size) must be invisible to the model
    small_gap_hidden = labelling.min_size * (1.0 if scale is None else scale) < MIN_VISIBLE_PX
    complete = complete_labels and small_gap_hidden
    # each object's oriented width is measured once per record (a hull per object)
    hidden = frozenset(id(o) for o in record.objects if not visible(o, scale))
    classes = {
        category: ClassFacts(
            category,
            objects,
            exhaustive=complete and labelling.exhaustive(category),
            visible=not any(id(o) in hidden for o in objects),
        )
        for category, objects in sorted(groups.items())
    }
    absence_known = complete and bool(record.objects)
    result = Knowledge(
        record,
        classes,
        scale,
        scene_questions="repeats" not in record.meta,
        absence_known=absence_known,
        hidden=hidden,
    )
    _knowledge = (record, context, result)
    return result


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
