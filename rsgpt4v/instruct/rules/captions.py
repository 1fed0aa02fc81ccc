"""Caption tasks: the image's own captions as answers."""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.schema import Record


def brief_caption(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One instruction per distinct caption of the image."""
    pool = load_pool("brief_caption")
    for index, caption in enumerate(dict.fromkeys(c.strip() for c in record.captions if c.strip())):
        question = rng.choice(pool.questions)
        yield Draft("brief_caption", index, pool.template, [(question, caption)])


TASKS = {"brief_caption": brief_caption}
