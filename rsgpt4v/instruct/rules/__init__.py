"""Instruction-Annotation Adaption: legacy labels rewritten as exact (question, answer) pairs.

Rules need no API key and are right by construction: a count is the label count, a box is the
labelled box (as a ``<ref:N>`` placeholder that ``export`` renders in the target model's style).
Each task is a function ``(record, rng) -> instructions`` in one of the family modules here,
registered in its module's ``TASKS``; phrasings come from ``prompts/rules``. The phrasing choice
depends only on the seed, the record id and the task, so a record gets the same instructions
whether it is processed alone, in a shard or in a whole dataset.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from rsgpt4v.instruct.rules import captions, objects
from rsgpt4v.instruct.rules.common import RuleContext, TaskFunction
from rsgpt4v.schema import Instruction, Record

RULE_TASKS: dict[str, TaskFunction] = {**captions.TASKS, **objects.TASKS}


__all__ = ["RULE_TASKS", "RuleContext", "rule_instructions"]


def rule_instructions(
    record: Record, tasks: Iterable[str], seed: int = 0, context: RuleContext | None = None
) -> Iterator[Instruction]:
    """All instructions of the asked tasks for one record, deterministic for a seed."""
    context = context or RuleContext()
    for task in tasks:
        rng = random.Random(f"{seed}|{record.id}|{task}")
        yield from RULE_TASKS[task](record, rng, context)
