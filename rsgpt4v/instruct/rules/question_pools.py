"""Further question types of a phrasing pool, for tasks that ask more than one kind of question.

``load_pool`` reads a pool's main ``questions``. A task with several question types (open and
multiple-choice classification; presence and false-premise questions; geographic location,
direction and area) keeps each further type's phrasings under its own key in the same
``prompts/rules/<task>.yaml``, held to the same minimum of distinct phrasings.
"""

from __future__ import annotations

from functools import cache

from rsgpt4v.errors import RsgptError
from rsgpt4v.instruct.phrasing import MIN_PHRASINGS, load_pool, pool_file


@cache
def load_questions(task: str, key: str) -> tuple[str, ...]:
    """The phrasings under ``key`` in the task's pool, validated once per process."""
    load_pool(task)  # the file exists and its main questions are valid
    questions = tuple(pool_file(task).get(key) or ())
    if len(set(questions)) < MIN_PHRASINGS:
        raise RsgptError(f"prompts/rules/{task}.yaml needs at least {MIN_PHRASINGS} distinct {key}")
    return questions
