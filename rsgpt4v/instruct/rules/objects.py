"""Object tasks from labels: counts and boxes, exact by construction."""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.phrasing import category_name, load_pool
from rsgpt4v.instruct.rules.common import (
    Draft,
    RuleContext,
    join_refs,
    objects_by_category,
)
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record

MAX_GROUNDING_BOXES = 20  # a longer answer is a list, not an instruction a model learns from


def counting(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """How many objects of each class present in the image."""
    pool = load_pool("counting")
    for index, (category, objects) in enumerate(objects_by_category(record).items()):
        name = category_name(category)
        words = {"singular": name.singular, "plural": name.plural, "count": len(objects)}
        question = fill_template(rng.choice(pool.questions), words)
        answer = fill_template(pool.answers["one" if len(objects) == 1 else "many"], words)
        yield Draft("counting", index, pool.template, [(question, answer)])


def grounding(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Every box of each class present, referred to as ``<ref:N>``."""
    pool = load_pool("grounding")
    for index, (category, objects) in enumerate(objects_by_category(record).items()):
        if len(objects) > MAX_GROUNDING_BOXES:
            continue
        name = category_name(category)
        words = {"singular": name.singular, "plural": name.plural, "count": len(objects)}
        question = fill_template(rng.choice(pool.questions), words)
        form = "one" if len(objects) == 1 else "many"
        answer = fill_template(pool.answers[form], {**words, "refs": join_refs(objects)})
        turns = [(question, answer)]
        yield Draft("grounding", index, pool.template, turns, objects)


TASKS = {"counting": counting, "grounding": grounding}
