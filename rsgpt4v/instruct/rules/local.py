"""Local tasks: one object's fine-grained facts, asked one by one or composed into a caption.

Every answer is a phrase of a fact of :mod:`rsgpt4v.instruct.attributes`; a fact that is None
(no GSD, a round object, no image root for colours …) is never asked about, and neither is an
object too small to be seen at the model's input (``Knowledge.visible``).

A region caption also tells the object's neighbourhood (:mod:`rsgpt4v.instruct.layout`):

- its neighbours of the same class (``layout.neighbours``), counted as the class's
  ``count_form`` allows (``3 other small vehicles``, ``at least 3 …``, or no number), with the
  side they lie on when they all lie on one (``to its east`` on north-up images);
- the nearest object of another class (``layout.nearest``, clearly nearest), when that class is
  labelled exhaustively (else an unlabelled one could be nearer) and the object is visible, with
  its distance when the GSD is known and its side.
"""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.attributes import ObjectFacts, cached_object_facts, is_north_up
from rsgpt4v.instruct.layout import nearest, neighbours, side_of
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, Knowledge, RuleContext, knowledge
from rsgpt4v.instruct.rules.fact_phrases import (
    AREA_STEPS,
    approx,
    describe_object,
    draft_from_text,
    fact_words,
    fill,
    ref,
    side_words,
    singular,
    stated_count,
)
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.regions import is_ambiguous
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name

MAX_LOCAL_OBJECTS = 3  # objects asked about per image (sampled with the rule's rng)
MAX_REGION_CAPTIONS = 3
# The order facts are told in a summary answer; "summary" asks for all of them at once.
FACT_KINDS = ("position", "size", "orientation", "colour", "length", "extent", "area")


def labelled_facts(record: Record, context: RuleContext) -> list[ObjectFacts]:
    """The facts of a labelled record's objects (each fact is about its own label only)."""
    if not record.labelled or not record.objects:
        return []
    return cached_object_facts(record, context.image_root)


def visible_facts(record: Record, context: RuleContext, task: str) -> list[ObjectFacts]:
    """The facts of the objects large enough at the model's input to be asked about alone (the
    others are counted as ``task``'s skips when none is left)."""
    facts = labelled_facts(record, context)
    if not facts:
        return []
    known = knowledge(record, context)
    shown = [f for f, o in zip(facts, record.objects, strict=True) if known.visible(o)]
    if not shown:
        context.skip(f"{task}: objects too small at the model's input")
    return shown


def fact_values(fact: ObjectFacts) -> dict[str, str]:
    """The phrase of every fact that holds, by kind (see ``FACT_KINDS``)."""
    words = fact_words()
    values = {"size": words["size"][fact.size_class]}
    if fact.position is not None:
        values["position"] = words["position"][fact.position]
    if fact.orientation is not None:
        values["orientation"] = words["orientation"][fact.orientation]
    if fact.colour is not None:
        values["colour"] = fact.colour
    if fact.length_m is not None and fact.width_m is not None:
        values["length"], values["width"] = approx(fact.length_m), approx(fact.width_m)
    elif fact.box_m is not None:
        values["box_width"], values["box_height"] = (approx(v) for v in fact.box_m)
    if fact.area_m2 is not None:
        values["area"] = approx(fact.area_m2, AREA_STEPS)
    return values


def local_attributes(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One question per sampled object about one of its facts, or about all of them.

    The subject's wording ("the ship <ref:3>", "the ship at <ref:3>") comes from a stream of its
    own (``TaskRandom.spawn``): the main one goes on to choose the next object's fact.
    """
    wording = rng.spawn("subjects")
    facts = visible_facts(record, context, "local_attributes")
    pool = load_pool("local_attributes")
    for index, fact in enumerate(_sample(facts, MAX_LOCAL_OBJECTS, rng)):
        values = fact_values(fact)
        kinds = [k for k in FACT_KINDS if k in values or (k == "extent" and "box_width" in values)]
        kind = rng.choice(["summary", *kinds])
        words = {"singular": singular(fact), "ref": ref(fact)}
        subject = fill_template(pick(pool.answers, "subject", wording), words)
        if kind == "summary":
            question = fill_template(rng.choice(pool.questions), words)
            later = fill_template(pick(pool.answers, "later_subject", wording), words)
            answer = " ".join(
                fill(
                    pick(pool.answers, k, rng), {**values, "subject": subject if i == 0 else later}
                )
                for i, k in enumerate(kinds)
            )
        else:
            question = rng.choice(load_questions("local_attributes", f"{kind}_questions"))
            question = fill_template(question, words)
            answer = fill(pick(pool.answers, kind, rng), {**values, "subject": subject})
        turns = [(question, answer)]
        yield draft_from_text("local_attributes", index, pool.template, turns, record)


def region_caption(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Box → one sentence composed from the object's facts, for a few sampled objects.

    A box that (nearly) coincides with a box of another class is skipped, as in region
    identification: the region alone cannot say which object is meant.
    """
    facts = visible_facts(record, context, "region_caption")
    if not facts:
        return
    pool = load_pool("region_caption")
    by_id = {o.id: o for o in record.objects}
    every = labelled_facts(record, context)
    known = knowledge(record, context)
    visible = {f.id for f in facts}
    for index, fact in enumerate(_sample(facts, MAX_REGION_CAPTIONS, rng)):
        if is_ambiguous(by_id[fact.id], record.objects):
            continue
        question = fill_template(rng.choice(pool.questions), {"ref": ref(fact)})
        description = describe_object(fact, with_ref=False)
        sentences = [fill(pick(pool.answers, "caption", rng), {"description": description})]
        sentences += _neighbourhood(fact, every, visible, known, record, rng)
        turns = [(question, " ".join(sentences))]
        yield draft_from_text("region_caption", index, pool.template, turns, record)


def _neighbourhood(
    fact: ObjectFacts,
    facts: list[ObjectFacts],
    visible: set[int],
    known: Knowledge,
    record: Record,
    rng: TaskRandom,
) -> list[str]:
    """Sentences on the object's same-class neighbours and its nearest other-class object."""
    answers = load_pool("region_caption").answers
    north_up = is_north_up(record.image)
    sentences = []
    same = [f for f in facts if f.category == fact.category]
    close = neighbours(fact, same)
    if close:
        name = category_name(fact.category)
        amount = stated_count(len(close), known.classes[fact.category].count_form)
        noun = name.singular if len(close) == 1 and amount is not None else name.plural
        values: dict[str, object] = {
            "amount": f"{amount} other {noun}" if amount else f"other {noun}"
        }
        sides = {side_of(f, fact) for f in close}
        if len(sides) == 1 and None not in sides:
            values["side"] = side_words(sides.pop(), north_up)
            sentences.append(fill(pick(answers, "neighbours_side", rng), values))
        else:
            sentences.append(fill(pick(answers, "neighbours", rng), values))
    others = [f for f in facts if f.category != fact.category]
    found = nearest(fact, others) if others else None
    if found is not None and found[0].id in visible and known.classes[found[0].category].exhaustive:
        other, distance = found
        values = {"other": singular(other), "other_ref": ref(other)}
        side = side_of(other, fact)
        key = "nearest_other"
        if record.image.gsd is not None:
            values["distance"], key = approx(distance * record.image.gsd), f"{key}_distance"
        if side is not None:
            values["side"], key = side_words(side, north_up), f"{key}_side"
        sentences.append(fill(pick(answers, key, rng), values))
    return sentences


def _sample(facts: list[ObjectFacts], limit: int, rng: TaskRandom) -> list[ObjectFacts]:
    """Up to ``limit`` facts in the record's order, sampled when there are more."""
    if len(facts) <= limit:
        return facts
    return [facts[i] for i in sorted(rng.sample(range(len(facts)), limit))]


TASKS = {"local_attributes": local_attributes, "region_caption": region_caption}
