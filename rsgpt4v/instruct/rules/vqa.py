"""VQA passthrough: a dataset's own question-answer pairs, kept as written."""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record


def vqa(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One instruction per distinct answered QA pair, its type in ``source.qa_type``.

    The question text is kept verbatim inside a neutral frame from the pool; a pair with an
    empty answer is skipped (converters keep unanswered questions out of ``qa``, e.g.
    FloodNet's test split in ``meta.unanswered_questions``, so this only guards odd input).
    ``source.qa_type`` is written only when the dataset gives a type.
    """
    pool = load_pool("vqa")
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(record.qa):
        pair = (item.question.strip(), item.answer.strip())
        if not all(pair) or pair in seen:
            continue
        seen.add(pair)
        question = fill_template(rng.choice(pool.questions), {"question": pair[0]})
        extra = {"qa_type": item.type} if item.type else None
        yield Draft("vqa", index, pool.template, [(question, pair[1])], (), extra)


TASKS = {"vqa": vqa}
