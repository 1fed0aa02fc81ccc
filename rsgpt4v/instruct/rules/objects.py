"""Object tasks from labels: counts and boxes, exact by construction and true to the image.

A count is stated exactly only where the class is labelled exhaustively; where labels may miss
instances it is "at least N"; and no count is asked where an object would be too small to see at
the model's input or there are more than ``MAX_COUNT`` (:mod:`rsgpt4v.instruct.answerability`).
A list of every box of a class ("where are the ships?") needs the exact count too.
"""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import ClassFacts, Draft, RuleContext, join_refs, knowledge
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name

MAX_GROUNDING_BOXES = 20  # a longer answer is a list, not an instruction a model learns from


def counting(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """How many objects of each class present in the image (at least how many, if partial)."""
    known = knowledge(record, context)
    if not known.scene_questions:
        context.skip("counting: tile repeats an overlapping tile", len(known.classes))
        return
    pool = load_pool("counting")
    for index, (category, facts) in enumerate(known.classes.items()):
        form = facts.count_form
        if form is None:
            context.skip(_uncountable(facts, "counting"))
            continue
        count = len(facts.objects)
        name = category_name(category)
        words = {"singular": name.singular, "plural": name.plural, "count": count}
        question = fill_template(rng.choice(pool.questions), words)
        key = ("one" if count == 1 else "many") + ("" if form == "exact" else "_at_least")
        answer = fill_template(pick(pool.answers, key, rng), words)
        yield Draft("counting", index, pool.template, [(question, answer)])


def grounding(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Every box of each class present, referred to as ``<ref:N>``: only where that is all."""
    known = knowledge(record, context)
    if not known.scene_questions:
        context.skip("grounding: tile repeats an overlapping tile", len(known.classes))
        return
    pool = load_pool("grounding")
    for index, (category, facts) in enumerate(known.classes.items()):
        objects = facts.objects
        if facts.count_form != "exact":
            context.skip(_uncountable(facts, "grounding"))
            continue
        if len(objects) > MAX_GROUNDING_BOXES:
            context.skip(f"grounding: more than {MAX_GROUNDING_BOXES} boxes")
            continue
        name = category_name(category)
        words = {"singular": name.singular, "plural": name.plural, "count": len(objects)}
        question = fill_template(rng.choice(pool.questions), words)
        form = "one" if len(objects) == 1 else "many"
        answer = fill_template(pick(pool.answers, form, rng), {**words, "refs": join_refs(objects)})
        turns = [(question, answer)]
        yield Draft("grounding", index, pool.template, turns, objects)


def _uncountable(facts: ClassFacts, task: str) -> str:
    """Why a class is not counted (or not listed) here: the summary's skip reason."""
    if not facts.visible:
        return f"{task}: objects too small at the model's input"
    if facts.count_form is None:
        return f"{task}: more objects than a model can count"
    return f"{task}: class not labelled exhaustively"


TASKS = {"counting": counting, "grounding": grounding}
