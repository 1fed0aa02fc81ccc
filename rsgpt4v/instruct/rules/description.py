"""The global pass without an LLM: one paragraph that integrates the local facts.

The paragraph is built in a fixed order, each sentence only when its fact holds:

1. per-class counts, most numerous class first;
2. for each of the ``MAX_DESCRIBED_CLASSES`` most numerous classes: where a single object is,
   or where most of the class is, its largest cluster, its first row and its density;
3. the largest object (``layout.largest``: of those fully inside the image when some are cut
   off) described by its facts, and the object nearest to it.

Groups larger than ``MAX_LISTED_REFS`` are counted rather than listed, so the text stays a
description and not a list of boxes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from rsgpt4v.instruct.attributes import ObjectFacts, cached_object_facts
from rsgpt4v.instruct.layout import ClassArrangement, class_arrangements, largest, nearest
from rsgpt4v.instruct.phrasing import category_name, load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext, objects_by_category
from rsgpt4v.instruct.rules.fact_phrases import (
    DENSITY_STEPS,
    approx,
    counted_noun,
    describe_object,
    draft_from_text,
    fact_words,
    fill,
    join_fact_refs,
    ref,
    singular,
)
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.schema import Record

MAX_DESCRIBED_CLASSES = 4
MAX_LISTED_REFS = 8
MIN_STATED_DENSITY = 0.1  # per hectare; sparser classes would read "about 0.0 per hectare"


def detailed_description(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One detailed description per labelled, completely labelled image with objects."""
    if not objects_by_category(record):
        return
    facts = cached_object_facts(record, context.image_root)
    pool = load_pool("detailed_description")
    answers = pool.answers
    by_id = {f.id: f for f in facts}
    arrangements = class_arrangements(facts, record.image, MAX_DESCRIBED_CLASSES)
    notable = largest(facts)
    sentences = [fill(answers["overview"], {"counts": _counts(facts)})]
    for arrangement in arrangements:
        if notable is None or arrangement.ids != (notable[0].id,):  # said below, in more detail
            sentences += _class_sentences(arrangement, by_id, answers)
    if notable is not None:
        biggest, all_whole = notable
        key = "largest" if all_whole else "largest_inside"
        sentences.append(fill(answers[key], {"description": describe_object(biggest)}))
        neighbour = nearest(biggest, facts)
        if neighbour is not None:
            values = {"b": ref(neighbour[0]), "b_name": singular(neighbour[0])}
            if record.image.gsd is None:
                sentences.append(fill(answers["nearest"], values))
            else:
                values["distance"] = approx(neighbour[1] * record.image.gsd)
                sentences.append(fill(answers["nearest_distance"], values))
    question = rng.choice(pool.questions)
    turns = [(question, " ".join(sentences))]
    yield draft_from_text("detailed_description", 0, pool.template, turns, record)


def _counts(facts: list[ObjectFacts]) -> str:
    """``5 ships, 4 storage tanks and 1 harbor``: most numerous class first, then by name."""
    counts = Counter(f.category for f in facts)
    parts = []
    for category, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        parts.append(counted_noun(count, category))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _class_sentences(
    arrangement: ClassArrangement, by_id: dict[int, ObjectFacts], answers: dict[str, str]
) -> list[str]:
    """Where a class is and how it is arranged, one sentence per fact that holds."""
    words = fact_words()
    name = category_name(arrangement.category)
    values: dict[str, object] = {"singular": name.singular, "plural": name.plural}
    if arrangement.count == 1:
        fact = by_id[arrangement.ids[0]]
        if fact.position is None:
            return []
        position = words["position"][fact.position]
        return [fill(answers["single"], {**values, "ref": ref(fact), "position": position})]
    sentences = []
    if arrangement.position is not None:
        position = words["position"][arrangement.position]
        sentences.append(fill(answers["majority"], {**values, "position": position}))
    if arrangement.clusters:
        cluster = arrangement.clusters[0]
        if len(cluster) == arrangement.count:
            sentences.append(fill(answers["grouped_all"], {**values, "count": arrangement.count}))
        elif len(cluster) <= MAX_LISTED_REFS:
            refs = join_fact_refs(by_id[i] for i in cluster)
            grouped = {**values, "grouped": len(cluster), "refs": refs}
            sentences.append(fill(answers["grouped"], grouped))
    if arrangement.rows and len(arrangement.rows[0].ids) <= MAX_LISTED_REFS:
        row = arrangement.rows[0]
        refs = join_fact_refs(by_id[i] for i in row.ids)
        if row.orientation is None:
            sentences.append(fill(answers["row"], {"refs": refs}))
        else:
            direction = words["row"][row.orientation]
            sentences.append(fill(answers["row_direction"], {"refs": refs, "direction": direction}))
    density = arrangement.density_per_hectare
    if density is not None and density >= MIN_STATED_DENSITY:
        stated = approx(density, DENSITY_STEPS)
        sentences.append(fill(answers["density"], {**values, "density": stated}))
    return sentences


TASKS = {"detailed_description": detailed_description}
