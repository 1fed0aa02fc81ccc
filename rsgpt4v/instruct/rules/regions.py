"""Region identification: a box is given, its class is the answer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rsgpt4v.geometry import box_iou
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext, knowledge
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Object, Record
from rsgpt4v.vocabulary import category_name

MAX_REGION_QUESTIONS = 5  # per image; objects beyond it are sampled with the rule's rng
AMBIGUOUS_IOU = 0.9  # a box this close to a box of another class does not name one class
_SILENT_INITIALS = ("hour", "honest", "heir")
_CONSONANT_SOUND_INITIALS = ("uni", "use", "usu", "uti", "eu", "one", "once")


def region_identification(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """ "What is the object at <ref:N>?" → its class, for up to MAX_REGION_QUESTIONS objects.

    Incomplete labels do not matter here (each answer is about one labelled box), but a box
    that (nearly) coincides with a box of another class is skipped: the region alone cannot
    say which class is meant; so is an object too small to see at the model's input.
    """
    if not record.labelled or not record.objects:
        return
    objects = knowledge(record, context).visible_objects()
    if len(objects) < len(record.objects):
        context.skip("region_identification: objects too small at the model's input")
    if len(objects) > MAX_REGION_QUESTIONS:
        picked = sorted(rng.sample(range(len(objects)), MAX_REGION_QUESTIONS))
        objects = [objects[i] for i in picked]
    pool = load_pool("region_identification")
    for obj in objects:
        if is_ambiguous(obj, record.objects):
            continue
        name = category_name(obj.category)
        words = {"ref": f"<ref:{obj.id}>", "singular": name.singular}
        question = fill_template(rng.choice(pool.questions), words)
        article = indefinite_article(name.singular)
        answer = fill_template(pick(pool.answers, "object", rng), {**words, "article": article})
        turns = [(question, answer)]
        yield Draft("region_identification", obj.id, pool.template, turns, [obj])


def is_ambiguous(obj: Object, others: Sequence[Object]) -> bool:
    """True when another class's box overlaps this one by AMBIGUOUS_IOU or more."""
    return any(
        other.category != obj.category and box_iou(obj.bbox, other.bbox) >= AMBIGUOUS_IOU
        for other in others
    )


def indefinite_article(noun_phrase: str) -> str:
    """``a`` or ``an`` by the sound of the first word (``an airplane``, ``a utility truck``)."""
    word = noun_phrase.lower()
    if word.startswith(_SILENT_INITIALS):
        return "an"
    if word.startswith(_CONSONANT_SOUND_INITIALS):
        return "a"
    return "an" if word[:1] in "aeiou" else "a"


TASKS = {"region_identification": region_identification}
