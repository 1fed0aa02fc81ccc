"""Instruction-Annotation Adaption: legacy labels rewritten as exact (question, answer) pairs.

Rules need no API key and are right by construction: a count is the label count, a box is the
labelled box (as a ``<ref:N>`` placeholder that ``export`` renders in the target model's style).
Each task is a function ``(record, rng) -> instructions``; phrasings come from ``prompts/rules``.
The random choice of phrasing depends only on the seed, the record id and the task, so a record
gets the same instructions whether it is processed alone, in a shard or in a whole dataset.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from rsgpt4v.instruct.phrasing import category_name, load_pool
from rsgpt4v.schema import Instruction, Message, Object, Record, Region, Source

MAX_GROUNDING_BOXES = 20  # a longer answer is a list, not an instruction a model learns from

TaskFunction = Callable[[Record, random.Random], Iterator[Instruction]]


def _instruction(
    record: Record,
    task: str,
    index: int,
    template: str,
    question: str,
    answer: str,
    objects: Iterable[Object] = (),
) -> Instruction:
    return Instruction(
        id=f"{record.id}#{task}-{index}",
        record_id=record.id,
        image=record.image.path,
        image_size=[record.image.width, record.image.height],
        task=task,
        source=Source(generator="rules", template=template),
        messages=[
            Message(role="user", content=f"<image>\n{question}"),
            Message(role="assistant", content=answer),
        ],
        regions={str(o.id): Region(bbox=o.bbox, polygon=o.polygon) for o in objects},
    )


def _objects_by_category(record: Record) -> dict[str, list[Object]]:
    """Objects grouped by class, or nothing when the labels cannot be trusted to be complete."""
    if not record.labelled or record.meta.get("skipped_objects"):
        return {}
    groups: dict[str, list[Object]] = defaultdict(list)
    for obj in record.objects:
        groups[obj.category].append(obj)
    return dict(sorted(groups.items()))


def brief_caption(record: Record, rng: random.Random) -> Iterator[Instruction]:
    """One instruction per distinct caption of the image."""
    pool = load_pool("brief_caption")
    for index, caption in enumerate(dict.fromkeys(c.strip() for c in record.captions if c.strip())):
        question = rng.choice(pool.questions)
        yield _instruction(record, "brief_caption", index, pool.template, question, caption)


def counting(record: Record, rng: random.Random) -> Iterator[Instruction]:
    """How many objects of each class present in the image."""
    pool = load_pool("counting")
    for index, (category, objects) in enumerate(_objects_by_category(record).items()):
        name = category_name(category)
        words = {"singular": name.singular, "plural": name.plural, "count": len(objects)}
        question = rng.choice(pool.questions).format(**words)
        answer = pool.answers["one" if len(objects) == 1 else "many"].format(**words)
        yield _instruction(record, "counting", index, pool.template, question, answer)


def grounding(record: Record, rng: random.Random) -> Iterator[Instruction]:
    """Every box of each class present, referred to as ``<ref:N>``."""
    pool = load_pool("grounding")
    for index, (category, objects) in enumerate(_objects_by_category(record).items()):
        if len(objects) > MAX_GROUNDING_BOXES:
            continue
        name = category_name(category)
        refs = [f"<ref:{o.id}>" for o in objects]
        listed = refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1]
        words = {"singular": name.singular, "plural": name.plural, "count": len(objects)}
        question = rng.choice(pool.questions).format(**words)
        answer = pool.answers["one" if len(objects) == 1 else "many"].format(refs=listed, **words)
        yield _instruction(record, "grounding", index, pool.template, question, answer, objects)


RULE_TASKS: dict[str, TaskFunction] = {
    "brief_caption": brief_caption,
    "counting": counting,
    "grounding": grounding,
}


def rule_instructions(record: Record, tasks: Iterable[str], seed: int = 0) -> Iterator[Instruction]:
    """All instructions of the asked tasks for one record, deterministic for a seed."""
    for task in tasks:
        rng = random.Random(f"{seed}|{record.id}|{task}")
        yield from RULE_TASKS[task](record, rng)
