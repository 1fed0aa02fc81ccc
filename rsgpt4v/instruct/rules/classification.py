"""Scene classification from ``record.label``: an open question and a multiple-choice one."""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name

CHOICE_LETTERS = "ABCD"  # at most four options, the usual multiple-choice layout


def classification(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """The scene label asked openly (``#classification-0``) and as a choice (``-1``).

    The choice needs other classes of the dataset (its converter's class list) as distractors;
    without any it is left out rather than asked with one option. Answer wordings come from
    their own stream (``TaskRandom.spawn``): the main one goes on to draw the options.
    """
    if not record.label or not record.label.strip():
        return
    wording = rng.spawn("answers")
    pool = load_pool("classification")
    label = category_name(record.label).singular
    question = rng.choice(pool.questions)
    answer = fill_template(pick(pool.answers, "open", wording), {"label": label})
    yield Draft("classification", 0, pool.template, [(question, answer)])
    options = choice_options(label, context.classes(record), rng)
    if options is None:
        return
    letter = CHOICE_LETTERS[options.index(label)]
    listed = "\n".join(f"{CHOICE_LETTERS[i]}. {option}" for i, option in enumerate(options))
    question = rng.choice(load_questions("classification", "choice_questions"))
    turns = [
        (
            fill_template(question, {"options": listed}),
            fill_template(
                pick(pool.answers, "choice", wording), {"letter": letter, "label": label}
            ),
        )
    ]
    yield Draft("classification", 1, pool.template, turns)


def choice_options(label: str, vocabulary: tuple[str, ...], rng: TaskRandom) -> list[str] | None:
    """The label and up to three distractors, shuffled; None when there is no distractor.

    Distractors are compared by their natural names, so a spelling variant of the label
    (``dense_residential`` beside ``dense residential``) can never be a second right answer.
    """
    others = sorted({category_name(c).singular for c in vocabulary} - {label})
    if not others:
        return None
    options = [*rng.sample(others, min(len(others), len(CHOICE_LETTERS) - 1)), label]
    rng.shuffle(options)
    return options


TASKS = {"classification": classification}
