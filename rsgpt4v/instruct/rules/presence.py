"""Presence of each class: yes (with the count where it is known), no for absent classes, false
premises refuted.

Absence is a claim about everything in the image, so it is made only for classes the dataset
labels exhaustively (:mod:`rsgpt4v.completeness`), where the record's labels are complete and
the image has at least one labelled object: a record with no objects cannot tell "nothing here"
from "this dataset labels no objects" (scene and caption datasets). Absent classes come from the
dataset's vocabulary, never from outside it. "Yes" needs an object large enough to see at the
model's input; its count is given as the counting task would give it, or left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext, knowledge
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.label_facts import NESTED_VOCABULARIES
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name

MAX_NEGATIVES = 3  # "no" questions per image, about absent classes of its dataset
MAX_FALSE_PREMISES = 1  # questions that presume an absent object, answered "there is none"
_PRESENT_FORMS = {"exact": "present", "at_least": "present_at_least", None: "present_uncounted"}


def presence(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Yes (+ count) per visible present class, then a few negatives and false premises."""
    known = knowledge(record, context)
    if not known.classes:
        return
    if not known.scene_questions:
        context.skip("presence: tile repeats an overlapping tile", len(known.classes))
        return
    pool = load_pool("presence")
    present = []
    for category, facts in known.classes.items():
        if not any(known.visible(o) for o in facts.objects):
            context.skip("presence: objects too small at the model's input")
            continue
        form = _PRESENT_FORMS[facts.count_form]
        one = len(facts.objects) == 1 and facts.count_form is not None
        present.append((category, form + ("_one" if one else "_many")))
    absent = []
    if known.absence_known:
        candidates = absent_classes(record, known.classes, context)
        absent = [c for c in candidates if known.may_call_absent(c, context)]
        if len(absent) < len(candidates):
            context.skip("presence: absence of a partially labelled class", 1)
    elif known.classes:
        context.skip("presence: absences not known (labels partial or objects too small)")
    negatives = [(c, "absent") for c in rng.sample(absent, min(len(absent), MAX_NEGATIVES))]
    premises = [
        (c, "false_premise") for c in rng.sample(absent, min(len(absent), MAX_FALSE_PREMISES))
    ]
    for index, (category, form) in enumerate(present + negatives + premises):
        phrasings = (
            load_questions("presence", "false_premise_questions")
            if form == "false_premise"
            else pool.questions
        )
        name = category_name(category)
        facts = known.classes.get(category)
        count = len(facts.objects) if facts else 0
        words = {"singular": name.singular, "plural": name.plural, "count": count}
        question = fill_template(rng.choice(phrasings), words)
        turns = [(question, fill_template(pick(pool.answers, form, rng), words))]
        yield Draft("presence", index, pool.template, turns)


def absent_classes(record: Record, groups: dict[str, list], context: RuleContext) -> list[str]:
    """Vocabulary classes that are surely absent, in vocabulary order.

    A class is left out when its name could still cover a present object: the same natural
    name (``Small_Vehicle`` beside ``small-vehicle``), one name inside the other, or the same
    head noun (``ship`` beside ``merchant ship``; ``large vehicle`` beside ``small vehicle``).
    """
    if record.dataset in NESTED_VOCABULARIES:
        return []
    return list(_absent(tuple(groups), context.classes(record)))


@lru_cache(maxsize=4096)
def _absent(present_classes: tuple[str, ...], vocabulary: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`absent_classes` of one set of present classes (many images share one)."""
    present = [category_name(c).singular for c in present_classes]
    heads = {name.rsplit(" ", 1)[-1] for name in present}
    absent = []
    for category in dict.fromkeys(vocabulary):
        if category in present_classes:
            continue
        name = category_name(category).singular
        overlaps = any(name in other or other in name for other in present)
        if not overlaps and name.rsplit(" ", 1)[-1] not in heads:
            absent.append(category)
    return tuple(absent)


TASKS = {"presence": presence}
