"""Local tasks: one object's fine-grained facts, asked one by one or composed into a caption.

Every answer is a phrase of a fact of :mod:`rsgpt4v.instruct.attributes`; a fact that is None
(no GSD, a round object, no image root for colours …) is never asked about.
"""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.attributes import ObjectFacts, cached_object_facts
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext
from rsgpt4v.instruct.rules.fact_phrases import (
    AREA_STEPS,
    approx,
    describe_object,
    draft_from_text,
    fact_words,
    fill,
    ref,
    singular,
)
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.regions import is_ambiguous
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record

MAX_LOCAL_OBJECTS = 3  # objects asked about per image (sampled with the rule's rng)
MAX_REGION_CAPTIONS = 3
# The order facts are told in a summary answer; "summary" asks for all of them at once.
FACT_KINDS = ("position", "size", "orientation", "colour", "length", "extent", "area")


def labelled_facts(record: Record, context: RuleContext) -> list[ObjectFacts]:
    """The facts of a labelled record's objects (each fact is about its own label only)."""
    if not record.labelled or not record.objects:
        return []
    return cached_object_facts(record, context.image_root)


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
    """One question per sampled object about one of its facts, or about all of them."""
    facts = labelled_facts(record, context)
    pool = load_pool("local_attributes")
    for index, fact in enumerate(_sample(facts, MAX_LOCAL_OBJECTS, rng)):
        values = fact_values(fact)
        kinds = [k for k in FACT_KINDS if k in values or (k == "extent" and "box_width" in values)]
        kind = rng.choice(["summary", *kinds])
        words = {"singular": singular(fact), "ref": ref(fact)}
        subject = fill_template(pool.answers["subject"], words)
        if kind == "summary":
            question = fill_template(rng.choice(pool.questions), words)
            later = pool.answers["later_subject"]
            answer = " ".join(
                fill(pool.answers[k], {**values, "subject": subject if i == 0 else later})
                for i, k in enumerate(kinds)
            )
        else:
            question = rng.choice(load_questions("local_attributes", f"{kind}_questions"))
            question = fill_template(question, words)
            answer = fill(pool.answers[kind], {**values, "subject": subject})
        turns = [(question, answer)]
        yield draft_from_text("local_attributes", index, pool.template, turns, record)


def region_caption(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """Box → one sentence composed from the object's facts, for a few sampled objects.

    A box that (nearly) coincides with a box of another class is skipped, as in region
    identification: the region alone cannot say which object is meant.
    """
    facts = labelled_facts(record, context)
    pool = load_pool("region_caption")
    by_id = {o.id: o for o in record.objects}
    for index, fact in enumerate(_sample(facts, MAX_REGION_CAPTIONS, rng)):
        if is_ambiguous(by_id[fact.id], record.objects):
            continue
        question = fill_template(rng.choice(pool.questions), {"ref": ref(fact)})
        answer = fill(
            pool.answers["caption"], {"description": describe_object(fact, with_ref=False)}
        )
        turns = [(question, answer)]
        yield draft_from_text("region_caption", index, pool.template, turns, record)


def _sample(facts: list[ObjectFacts], limit: int, rng: TaskRandom) -> list[ObjectFacts]:
    """Up to ``limit`` facts in the record's order, sampled when there are more."""
    if len(facts) <= limit:
        return facts
    return [facts[i] for i in sorted(rng.sample(range(len(facts)), limit))]


TASKS = {"local_attributes": local_attributes, "region_caption": region_caption}
