"""Multi-turn chains about one class: count → locate → relate → reason (3-5 user turns).

Each answer follows from the labels: the count is the label count, the locations are the boxes,
"closest" is a unique minimum of centre distances (by ``layout.NEAREST_MARGIN``), and the
reasoning turn restates an arrangement, size or count fact. The labels must be complete (a
count or a "closest" over a partial set would be wrong), as for counting.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from functools import cached_property

import numpy as np

from rsgpt4v.instruct.attributes import ObjectFacts, cached_object_facts
from rsgpt4v.instruct.layout import (
    NEAREST_MARGIN,
    ClassArrangement,
    arrangement_of,
    largest,
    nearest,
)
from rsgpt4v.instruct.phrasing import category_name, load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext, objects_by_category
from rsgpt4v.instruct.rules.fact_phrases import (
    approx,
    counted_noun,
    draft_from_text,
    fact_words,
    fill,
    join_fact_refs,
    ref,
)
from rsgpt4v.instruct.rules.objects import MAX_GROUNDING_BOXES
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record

MAX_USER_TURNS = 5
MIN_USER_TURNS = 3
REASONS = ("grouped", "largest", "compare", "row")
MAX_PYTHON_PAIRS = 256  # distance pairs computed in plain Python; numpy beyond

Turn = tuple[str, str]


class _Chain:
    """The class a chain is about, the other objects, and the words every turn uses."""

    def __init__(
        self,
        members: list[ObjectFacts],
        others: list[ObjectFacts],
        record: Record,
        rng: TaskRandom,
    ) -> None:
        self.members, self.others, self.record, self.rng = members, others, record, rng
        self.gsd = record.image.gsd
        name = category_name(members[0].category)
        self.words: dict[str, object] = {
            "singular": name.singular,
            "plural": name.plural,
            "count": len(members),
        }
        other_classes = sorted({f.category for f in others})
        self.other_class = rng.choice(other_classes) if other_classes else None
        if self.other_class is not None:
            other = category_name(self.other_class)
            self.words |= {"other_singular": other.singular, "other_plural": other.plural}

    @cached_property
    def arrangement(self) -> ClassArrangement:
        return arrangement_of(self.members, self.record.image)

    def ask(self, kind: str, answer_key: str, **values: object) -> Turn:
        question = self.rng.choice(load_questions("multi_turn", f"{kind}_questions"))
        answer = load_pool("multi_turn").answers[answer_key]
        return fill_template(question, self.words), fill(answer, {**self.words, **values})


def multi_turn(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One chain per image about a class chosen with the rng (one with 2+ objects if any)."""
    groups = objects_by_category(record)
    eligible = [c for c, objects in groups.items() if len(objects) <= MAX_GROUNDING_BOXES]
    if not eligible:
        return
    several = [c for c in eligible if len(groups[c]) >= 2]
    category = rng.choice(several or eligible)
    facts = cached_object_facts(record, context.image_root)
    members = [f for f in facts if f.category == category]
    chain = _Chain(members, [f for f in facts if f.category != category], record, rng)
    pool = load_pool("multi_turn")
    many = len(members) > 1
    turns = [
        (
            fill_template(rng.choice(pool.questions), chain.words),
            fill(pool.answers["count_many" if many else "count_one"], chain.words),
        ),
        chain.ask(
            "locate_many" if many else "locate_one",
            "locate_many" if many else "locate_one",
            refs=join_fact_refs(members),
        ),
    ]
    related = _closest_other(chain) if chain.other_class is not None else _closest_pair(chain)
    if related is not None:
        turns.append(related)
    wanted = rng.randint(1, 2)
    for reason in rng.sample(REASONS, len(REASONS)):
        if wanted == 0 or len(turns) == MAX_USER_TURNS:
            break
        turn = REASON_BUILDERS[reason](chain)
        if turn is not None:
            turns.append(turn)
            wanted -= 1
    if len(turns) >= MIN_USER_TURNS:
        yield draft_from_text("multi_turn", 0, pool.template, turns, record)


def _unique_minimum(values: list[float]) -> int | None:
    """Index of the smallest value if the runner-up is NEAREST_MARGIN times larger, else None.

    The first of equal smallest values is the smallest (and then not clearly so).
    """
    best, first, second = 0, math.inf, math.inf
    for index, value in enumerate(values):
        if value < first:
            best, first, second = index, value, first
        elif value < second:
            second = value
    return None if second < NEAREST_MARGIN * first else best


def _closest_distances(points: list[ObjectFacts], targets: list[ObjectFacts]) -> list[float]:
    """The distance from each point's centre to the nearest target centre."""
    if len(points) * len(targets) > MAX_PYTHON_PAIRS:  # numpy pays its cost per call back
        centres = np.array([f.centre for f in points])
        gaps = centres[:, np.newaxis, :] - np.array([f.centre for f in targets])[np.newaxis]
        return np.hypot(gaps[..., 0], gaps[..., 1]).min(axis=1).tolist()
    ends = [f.centre for f in targets]
    return [
        min(math.hypot(x - tx, y - ty) for tx, ty in ends) for x, y in (f.centre for f in points)
    ]


def _closest_other(chain: _Chain) -> Turn | None:
    """Which member is closest to any object of the other class (both clearly nearest)."""
    if len(chain.members) < 2:
        return None
    targets = [f for f in chain.others if f.category == chain.other_class]
    best = _unique_minimum(_closest_distances(chain.members, targets))
    if best is None:
        return None
    member = chain.members[best]
    found = nearest(member, targets)
    if found is None:
        return None
    values: dict[str, object] = {"ref": ref(member), "other_ref": ref(found[0])}
    if chain.gsd is None:
        return chain.ask("closest_other", "closest_other", **values)
    values["distance"] = approx(found[1] * chain.gsd)
    return chain.ask("closest_other", "closest_other_distance", **values)


def _closest_pair(chain: _Chain) -> Turn | None:
    """The two members nearest to each other, if clearly nearer than any other pair."""
    members = chain.members
    if len(members) < 2:
        return None
    pairs = list(itertools.combinations(members, 2))
    distances = [math.hypot(a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]) for a, b in pairs]
    best = _unique_minimum(distances)
    if best is None:
        return None
    a, b = pairs[best]
    values: dict[str, object] = {"ref_a": ref(a), "ref_b": ref(b)}
    if chain.gsd is None:
        return chain.ask("closest_pair", "closest_pair", **values)
    values["distance"] = approx(distances[best] * chain.gsd)
    return chain.ask("closest_pair", "closest_pair_distance", **values)


def _grouped(chain: _Chain) -> Turn | None:
    """Clusters of the class (layout rules); asked for three or more objects."""
    if len(chain.members) < 3:
        return None
    clusters = chain.arrangement.clusters
    by_id = {f.id: f for f in chain.members}
    groups = [[by_id[i] for i in cluster] for cluster in clusters]
    if not groups:
        return chain.ask("grouped", "spread")
    if len(groups) == 1 and len(groups[0]) == len(chain.members):
        return chain.ask("grouped", "grouped_all")
    if len(groups) == 1:
        return chain.ask(
            "grouped", "grouped_some", grouped=len(groups[0]), refs=join_fact_refs(groups[0])
        )
    refs = "; ".join(join_fact_refs(group) for group in groups)
    return chain.ask("grouped", "grouped_many", groups=len(groups), refs=refs)


def _largest(chain: _Chain) -> Turn | None:
    """The member of largest area, clearly larger than the others (see ``layout.largest``)."""
    if (found := largest(chain.members)) is None:
        return None
    best, all_whole = found
    key = "largest" if all_whole else "largest_inside"
    if best.length_m is not None:
        return chain.ask("largest", f"{key}_length", ref=ref(best), length=approx(best.length_m))
    return chain.ask("largest", key, ref=ref(best))


def _compare(chain: _Chain) -> Turn | None:
    if chain.other_class is None:
        return None
    other_count = sum(f.category == chain.other_class for f in chain.others)
    key = "more" if len(chain.members) > other_count else "not_more"
    counted = counted_noun(len(chain.members), chain.members[0].category)
    other_counted = counted_noun(other_count, chain.other_class)
    return chain.ask("compare", key, counted=counted, other_counted=other_counted)


def _row(chain: _Chain) -> Turn | None:
    if len(chain.members) < 3:
        return None
    rows = chain.arrangement.rows
    if not rows:
        return None
    by_id = {f.id: f for f in chain.members}
    refs = join_fact_refs(by_id[i] for i in rows[0].ids)
    if rows[0].orientation is None:
        return chain.ask("row", "row", refs=refs)
    direction = fact_words()["row"][rows[0].orientation]
    return chain.ask("row", "row_direction", refs=refs, direction=direction)


REASON_BUILDERS: dict[str, Callable[[_Chain], Turn | None]] = {
    "grouped": _grouped,
    "largest": _largest,
    "compare": _compare,
    "row": _row,
}

TASKS = {"multi_turn": multi_turn}
