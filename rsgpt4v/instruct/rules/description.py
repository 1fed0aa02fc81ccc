"""The global pass without an LLM: one paragraph that integrates every local and layout fact.

The paragraph is built in a fixed order, each sentence only when its fact holds:

1. the scene label, when the record has one (``record.label``);
2. the class mix, most numerous class first, each count as :class:`~rsgpt4v.instruct.rules.
   common.ClassFacts` allows it (``12``, ``at least 12``, or ``some`` / ``many`` without a
   number; a single object too small for the model's input is left out), and the leading
   class's share when every count is exact;
3. the ground extent of the image, when the GSD is known;
4. for each of the ``MAX_DESCRIBED_CLASSES`` most numerous classes: where it lies (the grid
   cells it occupies: sides, corners, centre), where most of it is, its clusters and rows (up
   to ``MAX_DESCRIBED_GROUPS`` of each, a row with its direction) and its density;
5. the largest object (``layout.largest``) described by its facts, and the object nearest to
   it — only when every class is exactly counted (else an unlabelled object could be larger or
   nearer).

A cluster or row of more than ``MAX_LISTED_REFS`` members (or with a member too small to point
at) is described by its count and where it lies instead of a list of boxes, never dropped.
Exact counts, majorities, densities and "all N" claims need ``count_form == "exact"``; a class
whose labels may miss instances gets "at least N" and existential sentences ("there are buses
in the top-left corner"); a class that cannot be counted at the model's input gets neither
numbers nor boxes. Each sentence is one phrasing of its key in ``detailed_description.yaml``,
drawn with the rule's rng. A tile that repeats an overlapping tile (``scene_questions``) is not
described.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from rsgpt4v.instruct.attributes import ObjectFacts, cached_object_facts
from rsgpt4v.instruct.layout import (
    HECTARE_M2,
    arrangement_of,
    group_position,
    largest,
    nearest,
)
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import ClassFacts, Draft, Knowledge, RuleContext, knowledge
from rsgpt4v.instruct.rules.fact_phrases import (
    AREA_STEPS,
    DENSITY_STEPS,
    approx,
    class_amount,
    describe_object,
    draft_from_text,
    fact_words,
    fill,
    join_fact_refs,
    join_words,
    ref,
    singular,
    stated_count,
)
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.schema import ImageInfo, Record
from rsgpt4v.vocabulary import category_name

MAX_DESCRIBED_CLASSES = 4
MAX_DESCRIBED_GROUPS = 3  # clusters, and rows, described per class
MAX_LISTED_REFS = 8
MAX_LISTED_AREAS = 4  # a class over more grid cells is "spread across the image"
MIN_STATED_DENSITY = 0.1  # per hectare; sparser classes would read "about 0.0 per hectare"

Say = Callable[..., str]


def detailed_description(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One detailed description per labelled image with objects (see the module docstring)."""
    if not record.labelled or not record.objects:
        return
    known = knowledge(record, context)
    if not known.scene_questions:
        context.skip("detailed_description: tile repeats another tile")
        return
    if not known.classes:
        return
    facts = cached_object_facts(record, context.image_root)
    visible = {f.id for f, o in zip(facts, record.objects, strict=True) if known.visible(o)}
    pool = load_pool("detailed_description")

    def say(key: str, **values: object) -> str:
        return fill(pick(pool.answers, key, rng), values)

    sentences = _scene_sentences(record, known, say)
    by_class: dict[str, list[ObjectFacts]] = {}
    for fact in facts:
        by_class.setdefault(fact.category, []).append(fact)
    order = sorted(known.classes, key=lambda c: (-len(known.classes[c].objects), c))
    for category in order[:MAX_DESCRIBED_CLASSES]:
        members = by_class[category]
        sentences += _class_sentences(known.classes[category], members, visible, record, say)
    if len(known.complete()) == len(known.classes):  # "largest"/"nearest" need every object
        sentences += _largest_sentences(facts, visible, record.image, say)
    if not sentences:
        return
    question = rng.choice(pool.questions)
    turns = [(question, " ".join(sentences))]
    yield draft_from_text("detailed_description", 0, pool.template, turns, record)


def _scene_sentences(record: Record, known: Knowledge, say: Say) -> list[str]:
    """Scene label, class mix, the leading class's share and the ground extent."""
    sentences = []
    if record.label:
        sentences.append(say("scene", scene=category_name(record.label).singular))
    ranked = sorted(known.classes.values(), key=lambda c: (-len(c.objects), c.category))
    amounts = [class_amount(len(c.objects), c.category, c.count_form) for c in ranked]
    amounts = [a for a in amounts if a is not None]
    if amounts:
        sentences.append(say("overview", counts=join_words(amounts)))
    if len(ranked) >= 2 and len(known.complete()) == len(ranked):
        total = sum(len(c.objects) for c in ranked)
        top = ranked[0]
        if 2 * len(top.objects) > total:
            name = category_name(top.category)
            values = {"plural": name.plural, "count": len(top.objects), "total": total}
            sentences.append(say("majority_class", **values))
    gsd = record.image.gsd
    if gsd is not None:
        width, height = record.image.width * gsd, record.image.height * gsd
        hectares = width * height / HECTARE_M2
        sentences.append(
            say(
                "extent",
                width=approx(width),
                height=approx(height),
                hectares=approx(hectares, DENSITY_STEPS if hectares < 100 else AREA_STEPS),
            )
        )
    return sentences


def _class_sentences(
    facts: ClassFacts,
    members: list[ObjectFacts],
    visible: set[int],
    record: Record,
    say: Say,
) -> list[str]:
    """Where a class lies and how it is arranged, one sentence per fact that holds."""
    words = fact_words()
    form = facts.count_form
    name = category_name(facts.category)
    values: dict[str, object] = {"singular": name.singular, "plural": name.plural}
    if len(members) == 1:
        fact = members[0]
        if fact.position is None or fact.id not in visible:
            return []
        key = "single" if form == "exact" else "single_some"
        return [say(key, **values, ref=ref(fact), position=words["position"][fact.position])]
    sentences = []
    cells = list(dict.fromkeys(f.position for f in members if f.position is not None))
    all_placed = len(cells) > 0 and all(f.position is not None for f in members)
    if len(cells) > MAX_LISTED_AREAS:
        sentences.append(say("spread", **values))
    elif cells:
        areas = join_words([words["area"][c] for c in _grid_order(cells)])
        if form == "exact" and all_placed:
            key = "areas_both" if len(members) == 2 else "areas_all"
            sentences.append(say(key, **values, count=len(members), areas=areas))
        else:
            sentences.append(say("areas_some", **values, areas=areas))
    arrangement = arrangement_of(members, record.image)
    if form is None:  # not countable at the model's input: no numbers, no boxes; rows remain
        for row in arrangement.rows[:MAX_DESCRIBED_GROUPS]:  # a pattern visible as a whole
            group = [by_id_of(members)[i] for i in row.ids]
            where = _where(group, record.image)
            if row.orientation is not None:
                direction = words["row"][row.orientation]
                sentences.append(
                    say("row_uncounted_direction", **values, direction=direction, where=where)
                )
            else:
                sentences.append(say("row_uncounted", **values, where=where))
        return sentences
    if form == "exact" and arrangement.position is not None and len(cells) > 1:
        sentences.append(
            say("majority", **values, position=words["position"][arrangement.position])
        )
    by_id = {f.id: f for f in members}
    row_sets = {frozenset(row.ids) for row in arrangement.rows}
    clusters = [c for c in arrangement.clusters if frozenset(c) not in row_sets]
    for cluster in clusters[:MAX_DESCRIBED_GROUPS]:
        group = [by_id[i] for i in cluster]
        where = _where(group, record.image)
        if len(cluster) == len(members) and form == "exact":
            sentences.append(say("grouped_all", **values, count=len(members), where=where))
            continue
        grouped = stated_count(len(cluster), form)
        if _listable(group, visible):
            refs = join_fact_refs(group)
            sentences.append(say("grouped", **values, grouped=grouped, where=where, refs=refs))
        else:
            sentences.append(say("grouped_counted", **values, grouped=grouped, where=where))
    if form == "exact" and len(arrangement.rows) > 1:
        sentences.append(say("rows", **values, rows=len(arrangement.rows)))
    for row in arrangement.rows[:MAX_DESCRIBED_GROUPS]:
        group = [by_id[i] for i in row.ids]
        row_values = {
            **values,
            "count": stated_count(len(group), form),
            "where": _where(group, record.image),
        }
        if row.orientation is not None:
            key, row_values["direction"] = "row_direction", words["row"][row.orientation]
        else:
            key = "row"
        if _listable(group, visible):
            sentences.append(say(f"{key}_refs", **row_values, refs=join_fact_refs(group)))
        else:
            sentences.append(say(key, **row_values))
    density = arrangement.density_per_hectare
    if form == "exact" and density is not None and density >= MIN_STATED_DENSITY:
        stated = approx(density, DENSITY_STEPS)
        sentences.append(say("density", **values, density=stated))
    return sentences


def by_id_of(members: list[ObjectFacts]) -> dict[int, ObjectFacts]:
    return {f.id: f for f in members}


def _listable(group: list[ObjectFacts], visible: set[int]) -> bool:
    return len(group) <= MAX_LISTED_REFS and all(f.id in visible for f in group)


def _where(group: list[ObjectFacts], image: ImageInfo) -> str:
    """`` in the top-left corner of the image`` (the cell of the group's mean centre), or ''."""
    cell = group_position(group, image)
    return "" if cell is None else " " + fact_words()["position"][cell]


_GRID_ORDER = ("top-left", "top", "top-right", "left", "centre", "right")
_GRID_ORDER += ("bottom-left", "bottom", "bottom-right")


def _grid_order(cells: list[str]) -> list[str]:
    return sorted(cells, key=_GRID_ORDER.index)


def _largest_sentences(
    facts: list[ObjectFacts], visible: set[int], image: ImageInfo, say: Say
) -> list[str]:
    """The largest object (of those fully inside the image) and its nearest neighbour."""
    notable = largest(facts)
    if notable is None or notable[0].id not in visible:
        return []
    biggest, all_whole = notable
    key = "largest" if all_whole else "largest_inside"
    sentences = [say(key, description=describe_object(biggest))]
    neighbour = nearest(biggest, facts)
    if neighbour is not None and neighbour[0].id in visible:
        values: dict[str, object] = {"b": ref(neighbour[0]), "b_name": singular(neighbour[0])}
        if image.gsd is None:
            sentences.append(say("nearest", **values))
        else:
            values["distance"] = approx(neighbour[1] * image.gsd)
            sentences.append(say("nearest_distance", **values))
    return sentences


TASKS = {"detailed_description": detailed_description}
