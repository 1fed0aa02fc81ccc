"""Spatial relations between objects: sides, nearest, between, distances in metres.

The claims and their margins are those of :mod:`rsgpt4v.instruct.layout`; a pair whose relation
is a near-tie gets no question about it. Questions that need every object of the image
("which … is nearest", "which object lies between") are asked only when the labels are complete.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from functools import cached_property

from rsgpt4v.instruct.attributes import ObjectFacts
from rsgpt4v.instruct.layout import (
    MAX_RELATION_OBJECTS,
    PairRelation,
    between_split,
    nearest,
    relation,
)
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext, knowledge
from rsgpt4v.instruct.rules.fact_phrases import (
    approx,
    draft_from_text,
    fact_words,
    fill,
    ref,
    singular,
)
from rsgpt4v.instruct.rules.local import labelled_facts
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name

MAX_RELATION_QUESTIONS = 3  # per image
MAX_PAIRS_TRIED = 12  # pairs looked at per image before giving up on finding more questions
KINDS = ("relation", "horizontal", "vertical", "distance", "nearest", "between", "between_check")

Turn = tuple[str, str]


class _Pair:
    """What the question builders need about one ordered pair."""

    def __init__(
        self,
        a: ObjectFacts,
        b: ObjectFacts,
        facts: list[ObjectFacts],
        record: Record,
        complete: bool,
        rng: TaskRandom,
        wording: TaskRandom,
    ) -> None:
        self.a, self.b, self.facts, self.complete, self.rng = a, b, facts, complete, rng
        self.wording = wording  # answer wordings: a stream of their own (TaskRandom.spawn)
        self.gsd = record.image.gsd
        self.relation: PairRelation = relation(a, b, self.gsd)
        self.words = {
            "a": ref(a),
            "b": ref(b),
            "a_name": singular(a),
            "b_name": singular(b),
        }

    @cached_property
    def between(self) -> tuple[list[ObjectFacts], list[ObjectFacts]]:
        """The objects between a and b, and those clearly not (see ``layout.between_split``)."""
        return between_split(self.a, self.b, self.facts)


def relations(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Up to MAX_RELATION_QUESTIONS questions about pairs of a seeded sample of objects.

    Answer wordings come from their own stream (``TaskRandom.spawn``): the main one goes on to
    choose the pairs and the kind of question asked of each.
    """
    wording = rng.spawn("answers")
    known = knowledge(record, context)
    shown = {o.id for o in known.visible_objects()}
    facts = [f for f in labelled_facts(record, context) if f.id in shown]
    if len(facts) < 2:
        if len(record.objects) >= 2 and record.labelled:
            context.skip("relations: objects too small at the model's input")
        return
    # "nearest" and "between" speak of every object: all classes exact, every object visible
    complete = bool(known.classes) and len(known.complete()) == len(known.classes)
    chosen = (
        facts if len(facts) <= MAX_RELATION_OBJECTS else rng.sample(facts, MAX_RELATION_OBJECTS)
    )
    pairs = list(itertools.combinations(chosen, 2))
    pool = load_pool("relations")
    index = 0
    for a, b in rng.sample(pairs, min(len(pairs), MAX_PAIRS_TRIED)):  # the tried ones only
        if rng.random() < 0.5:
            a, b = b, a
        pair = _Pair(a, b, facts, record, complete, rng, wording)
        for kind in rng.sample(KINDS, len(KINDS)):
            turn = BUILDERS[kind](pair)
            if turn is not None:
                yield draft_from_text("relations", index, pool.template, [turn], record)
                index += 1
                break
        if index == MAX_RELATION_QUESTIONS:
            return


def _question(kind: str, pair: _Pair, **extra: str) -> str:
    pool = load_pool("relations")
    phrasings = (
        pool.questions if kind == "relation" else load_questions("relations", f"{kind}_questions")
    )
    return fill_template(pair.rng.choice(phrasings), {**pair.words, **extra})


def _relation(pair: _Pair) -> Turn | None:
    sides = fact_words()["side"]
    horizontal, vertical = pair.relation.horizontal, pair.relation.vertical
    answers = load_pool("relations").answers
    if horizontal and vertical:
        both = {"horizontal": sides[horizontal], "vertical": sides[vertical]}
        side = fill_template(pick(answers, "both_sides", pair.wording), both)
    elif horizontal or vertical:
        side = sides[horizontal or vertical]
    else:
        return None
    values = {**pair.words, "sides": side}
    if pair.relation.distance_m is not None:
        values["distance"] = approx(pair.relation.distance_m)
        return _question("relation", pair), fill(
            pick(answers, "relation_distance", pair.wording), values
        )
    return _question("relation", pair), fill(pick(answers, "relation", pair.wording), values)


def _side_check(kind: str, opposite: dict[str, str]) -> Callable[[_Pair], Turn | None]:
    """A yes/no builder for one axis: asks the true side or its opposite, half the time each."""

    def build(pair: _Pair) -> Turn | None:
        actual = getattr(pair.relation, kind)
        if actual is None:
            return None
        sides = fact_words()["side"]
        asked = actual if pair.rng.random() < 0.5 else opposite[actual]
        answers = load_pool("relations").answers
        values = {**pair.words, "side": sides[asked], "actual": sides[actual]}
        answer = pick(answers, "side_yes" if asked == actual else "side_no", pair.wording)
        return _question(kind, pair, side=sides[asked]), fill(answer, values)

    return build


def _distance(pair: _Pair) -> Turn | None:
    if pair.relation.distance_m is None:
        return None
    answer = pick(load_pool("relations").answers, "distance", pair.wording)
    return _question("distance", pair), fill(answer, {"distance": approx(pair.relation.distance_m)})


def _nearest(pair: _Pair) -> Turn | None:
    """Which object of b's class is nearest to a: b's class must be complete, b clearly nearest."""
    if not pair.complete:
        return None
    same_class = [f for f in pair.facts if f.category == pair.b.category]
    found = nearest(pair.a, same_class)
    if found is None or found[0].id != pair.b.id:
        return None
    name = category_name(pair.b.category)
    values = {**pair.words, "c": ref(pair.b), "c_name": name.singular, "c_plural": name.plural}
    answers = load_pool("relations").answers
    question = _question("nearest", pair, c_name=name.singular, c_plural=name.plural)
    if pair.gsd is not None:
        values["distance"] = approx(found[1] * pair.gsd)
        return question, fill(pick(answers, "nearest_distance", pair.wording), values)
    return question, fill(pick(answers, "nearest", pair.wording), values)


def _between(pair: _Pair) -> Turn | None:
    """Which object lies between a and b: asked when exactly one labelled object does."""
    if not pair.complete:
        return None
    found = pair.between[0]
    if len(found) != 1:
        return None
    c = found[0]
    answer = pick(load_pool("relations").answers, "between", pair.wording)
    return _question("between", pair), fill(answer, {"c": ref(c), "c_name": singular(c)})


def _between_check(pair: _Pair) -> Turn | None:
    """Is C between a and b: yes for an object that is, no for one that clearly is not."""
    inside, outside = pair.between
    options = [(key, found) for key, found in (("between_yes", inside), ("between_no", outside))]
    options = [(key, found) for key, found in options if found]
    if not options:
        return None
    key, found = pair.rng.choice(options)
    c = pair.rng.choice(found)
    extra = {"c": ref(c), "c_name": singular(c)}
    answer = pick(load_pool("relations").answers, key, pair.wording)
    return _question("between_check", pair, **extra), fill(answer, extra)


BUILDERS: dict[str, Callable[[_Pair], Turn | None]] = {
    "relation": _relation,
    "horizontal": _side_check("horizontal", {"left": "right", "right": "left"}),
    "vertical": _side_check("vertical", {"above": "below", "below": "above"}),
    "distance": _distance,
    "nearest": _nearest,
    "between": _between,
    "between_check": _between_check,
}

TASKS = {"relations": relations}
