"""Instruction-Annotation Adaption: legacy labels rewritten as exact (question, answer) pairs.

Rules need no API key and are right by construction: a count is the label count, a box is the
labelled box (as a ``<ref:N>`` placeholder that ``export`` renders in the target model's style).
Each task is a function ``(record, rng, context) -> drafts`` in one of the family modules here,
registered in its module's ``TASKS``; a draft (``common.Draft``) becomes an ``Instruction``
model, or goes straight to its JSON line in the instruct stage (``rsgpt4v.instruct.lines``);
phrasings come from ``prompts/rules``. The phrasing choice
depends only on the seed, the record id and the task, so a record gets the same instructions
whether it is processed alone, in a shard or in a whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rsgpt4v.instruct.rules import (
    captions,
    classification,
    description,
    dialogue,
    geographic,
    local,
    objects,
    presence,
    regions,
    relations,
    vqa,
)
from rsgpt4v.instruct.rules.common import Draft, RuleContext, TaskFunction, make_instruction
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.schema import Instruction, Record

RULE_TASKS: dict[str, TaskFunction] = {**captions.TASKS, **objects.TASKS}
RULE_TASKS |= {
    **classification.TASKS,
    **vqa.TASKS,
    **presence.TASKS,
    **regions.TASKS,
    **geographic.TASKS,
}
RULE_TASKS |= {**local.TASKS, **relations.TASKS, **dialogue.TASKS, **description.TASKS}


# Tasks that read the per-object facts (rsgpt4v.instruct.attributes): the instruct stage computes
# those for many records at once when one of these runs.
FACT_TASKS = frozenset(
    {"local_attributes", "region_caption", "relations", "multi_turn", "detailed_description"}
)

__all__ = ["FACT_TASKS", "RULE_TASKS", "Draft", "RuleContext", "rule_drafts", "rule_instructions"]


def rule_drafts(
    record: Record, tasks: Iterable[str], seed: int = 0, context: RuleContext | None = None
) -> Iterator[Draft]:
    """The drafts of every asked task for one record, deterministic for a seed.

    Each task draws from its own stream (:class:`TaskRandom`), seeded by the seed, the record id
    and the task, so its phrasings do not depend on which other tasks or records run.
    """
    context = context or RuleContext()
    stream = TaskRandom.streams(f"{seed}|{record.id}|")  # stream(task) = TaskRandom("…|task")
    for task in tasks:
        yield from RULE_TASKS[task](record, stream(task), context)


def rule_instructions(
    record: Record, tasks: Iterable[str], seed: int = 0, context: RuleContext | None = None
) -> Iterator[Instruction]:
    """All instructions of the asked tasks for one record, deterministic for a seed."""
    for draft in rule_drafts(record, tasks, seed, context):
        yield make_instruction(record, draft)
