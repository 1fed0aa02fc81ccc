"""Phrasing pools and category names for rule-based instructions, read from ``rsgpt4v.prompts``.

Wording lives in YAML next to the LLM templates so it can be reviewed and extended without
touching code; each pool carries a template id (``counting/v1``) recorded in every instruction.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class CategoryName:
    singular: str
    plural: str


@cache
def _overrides() -> dict[str, dict[str, str]]:
    resource = files("rsgpt4v.prompts") / "categories.yaml"
    return yaml.safe_load(resource.read_text(encoding="utf-8")) or {}


@cache
def category_name(category: str) -> CategoryName:
    """How a class string reads in a sentence: ``small-vehicle`` → small vehicle(s)."""
    override = _overrides().get(category)
    if override:
        return CategoryName(override["singular"], override["plural"])
    singular = re.sub(r"[-_\s]+", " ", category).strip().lower()
    return CategoryName(singular, pluralise(singular))


def pluralise(noun_phrase: str) -> str:
    """Regular English plural of the last word (class names are regular nouns)."""
    head, _, last = noun_phrase.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last
