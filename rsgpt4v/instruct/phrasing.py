"""Phrasing pools for rule-based instructions, read from ``rsgpt4v.prompts`` (how classes are
named: :func:`rsgpt4v.vocabulary.category_name`).

Wording lives in YAML next to the LLM templates so it can be reviewed and extended without
touching code; each pool carries a template id (``counting/v1``) recorded in every instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml

from rsgpt4v.errors import RsgptError

MIN_PHRASINGS = 8


@dataclass(frozen=True)
class PhrasingPool:
    template: str
    questions: tuple[str, ...]
    answers: dict[str, str | list[str]]  # a phrasing, or its variants (task_random.pick)


@cache
def load_pool(task: str) -> PhrasingPool:
    """The phrasing pool of a rule task, validated once per process."""
    data = pool_file(task)
    questions = tuple(data.get("questions") or ())
    if len(questions) < MIN_PHRASINGS:
        raise RsgptError(f"prompts/rules/{task}.yaml needs at least {MIN_PHRASINGS} questions")
    return PhrasingPool(data["template"], questions, dict(data.get("answers") or {}))


@cache
def pool_file(task: str) -> dict:
    """The parsed ``prompts/rules/<task>.yaml`` (read once per process; do not change it)."""
    resource = files("rsgpt4v.prompts") / "rules" / f"{task}.yaml"
    if not resource.is_file():
        raise RsgptError(f"no phrasing pool for task {task!r} (prompts/rules/{task}.yaml)")
    return yaml.safe_load(resource.read_text(encoding="utf-8"))
