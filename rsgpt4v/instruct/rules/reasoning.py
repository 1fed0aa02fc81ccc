"""The reasoning patterns a multi-turn dialogue draws from, each computed from the labels.

A pattern is a function of a :class:`Scene` that returns one to three (question, answer) turns,
or None when its facts do not hold for the record. Every question names what it asks about, so
patterns can follow each other in any order. What a pattern needs:

- ``count`` (the focus class countable): its count as ``ClassFacts.count_form`` allows it, then
  where they all are (exact counts only: "they are at …" must list every one).
- ``compare``, ``difference``, ``total`` (two exactly counted classes): which is more numerous,
  how many more, how many together — label arithmetic.
- ``total_area``, ``mean_length`` (the focus exactly counted, a GSD, every member whole): the sum
  of the polygon areas, the mean of the oriented boxes' lengths.
- ``size_ratio`` (two visible whole members): the ratio of their pixel areas, asked only when it
  is at least ``layout.LARGEST_MARGIN``.
- ``chain`` (three visible objects): A is on one side of B, B on the same side of C, so A is on
  that side of C; asked only when both steps hold by the ``layout.relation`` margins, which makes
  the conclusion hold by them too (the margins add up), and the conclusion is checked as well.
- ``distance_sum`` (a GSD) and ``distance_compare``: two centre distances, then their sum (a
  route A → B → C) or which is shorter (only by ``layout.NEAREST_MARGIN``).
- ``closest_other``, ``closest_pair``, ``grouped``, ``row``, ``largest``: the arrangement facts
  of the focus class (exactly counted; ``row`` also for partial labels, being existential).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.spatial.distance import pdist

from rsgpt4v.instruct.attributes import ObjectFacts
from rsgpt4v.instruct.layout import (
    LARGEST_MARGIN,
    NEAREST_MARGIN,
    ClassArrangement,
    arrangement_of,
    largest,
    nearest,
    relation,
)
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Knowledge
from rsgpt4v.instruct.rules.fact_phrases import (
    AREA_STEPS,
    approx,
    counted_noun,
    fact_words,
    fill,
    join_fact_refs,
    ref,
    singular,
    stated_count,
)
from rsgpt4v.instruct.rules.objects import MAX_GROUNDING_BOXES
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.task_random import TaskRandom, pick
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name

MAX_CHAIN_CANDIDATES = 12  # visible objects (sampled) searched for a spatial chain
MAX_PYTHON_PAIRS = 256  # distance pairs computed in plain Python; numpy beyond
RATIO_STEPS = ((math.inf, 0.1),)

Turn = tuple[str, str]


@dataclass
class Scene:
    """What the patterns of one dialogue share: the record's facts, what may be said, the rng."""

    record: Record
    facts: list[ObjectFacts]
    known: Knowledge
    visible: set[int]
    rng: TaskRandom
    focus: str | None
    other: str | None  # another exactly counted class, for comparisons
    words: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.focus is not None:
            name = category_name(self.focus)
            self.words |= {"singular": name.singular, "plural": name.plural}
            self.words["count"] = stated_count(len(self.members), self.form)
        if self.other is not None:
            name = category_name(self.other)
            self.words |= {"other_singular": name.singular, "other_plural": name.plural}

    @cached_property
    def members(self) -> list[ObjectFacts]:
        return [f for f in self.facts if f.category == self.focus]

    @property
    def form(self) -> str | None:
        return self.known.classes[self.focus].count_form if self.focus else None

    @property
    def exact(self) -> bool:
        return self.form == "exact"

    @cached_property
    def arrangement(self) -> ClassArrangement:
        return arrangement_of(self.members, self.record.image)

    @property
    def gsd(self) -> float | None:
        return self.record.image.gsd

    def seen(self, facts: list[ObjectFacts]) -> list[ObjectFacts]:
        return [f for f in facts if f.id in self.visible]

    def ask(self, kind: str, answer_key: str, **values: object) -> Turn:
        """A question of ``{kind}_questions`` and an answer of ``answer_key``, both filled."""
        question = self.rng.choice(load_questions("multi_turn", f"{kind}_questions"))
        answer = pick(load_pool("multi_turn").answers, answer_key, self.rng)
        every = {**self.words, **values}
        return fill(question, every), fill(answer, every)


def _count(scene: Scene) -> list[Turn] | None:
    if scene.form is None:
        return None
    pool = load_pool("multi_turn")
    many = len(scene.members) > 1
    key = ("count_many" if many else "count_one") + ("" if scene.exact else "_at_least")
    question = fill_template(scene.rng.choice(pool.questions), scene.words)
    turns = [(question, fill(pick(pool.answers, key, scene.rng), scene.words))]
    every_seen = len(scene.seen(scene.members)) == len(scene.members)
    if scene.exact and every_seen and len(scene.members) <= MAX_GROUNDING_BOXES:
        kind = "locate_many" if many else "locate_one"
        turns.append(scene.ask(kind, kind, refs=join_fact_refs(scene.members)))
    return turns


def _other_count(scene: Scene) -> int:
    return sum(f.category == scene.other for f in scene.facts)


def _compare(scene: Scene) -> list[Turn] | None:
    if not scene.exact or scene.other is None:
        return None
    ours, theirs = len(scene.members), _other_count(scene)
    values = {
        "counted": counted_noun(ours, scene.focus),
        "other_counted": counted_noun(theirs, scene.other),
    }
    return [scene.ask("compare", "more" if ours > theirs else "not_more", **values)]


def _difference(scene: Scene) -> list[Turn] | None:
    """How many more of the larger class than of the smaller: a subtraction of label counts."""
    if not scene.exact or scene.other is None:
        return None
    counts = {scene.focus: len(scene.members), scene.other: _other_count(scene)}
    (more, high), (fewer, low) = sorted(counts.items(), key=lambda kv: -kv[1])
    if high == low:
        return None
    values = {
        "more_singular": category_name(more).singular,
        "more_plural": category_name(more).plural,
        "fewer_plural": category_name(fewer).plural,
        "difference": high - low,
        "more_counted": counted_noun(high, more),
        "fewer_counted": counted_noun(low, fewer),
    }
    key = "difference_one" if high - low == 1 else "difference"  # "1 more ship than …"
    return [scene.ask("difference", key, **values)]


def _total(scene: Scene) -> list[Turn] | None:
    """How many of the two classes together: an addition of label counts."""
    if not scene.exact or scene.other is None:
        return None
    ours, theirs = len(scene.members), _other_count(scene)
    values = {
        "total": ours + theirs,
        "counted": counted_noun(ours, scene.focus),
        "other_counted": counted_noun(theirs, scene.other),
    }
    return [scene.ask("total", "total", **values)]


def _whole(scene: Scene) -> list[ObjectFacts] | None:
    """The focus members when each has a real size (exact count, GSD, none cut off)."""
    members = scene.members
    if not scene.exact or len(members) < 2 or scene.gsd is None:
        return None
    if any(f.area_m2 is None or f.length_m is None for f in members):
        return None
    return members


def _total_area(scene: Scene) -> list[Turn] | None:
    members = _whole(scene)
    if members is None:
        return None
    total = sum(f.area_m2 for f in members)
    biggest = max(members, key=lambda f: f.area_m2)
    values = {
        "total_area": approx(total, AREA_STEPS),
        "mean_area": approx(total / len(members), AREA_STEPS),
    }
    if biggest.id in scene.visible:
        values |= {"ref": ref(biggest), "area": approx(biggest.area_m2, AREA_STEPS)}
        return [scene.ask("total_area", "total_area_largest", **values)]
    return [scene.ask("total_area", "total_area", **values)]


def _mean_length(scene: Scene) -> list[Turn] | None:
    members = _whole(scene)
    if members is None:
        return None
    lengths = [f.length_m for f in members]
    values = {
        "mean": approx(sum(lengths) / len(lengths)),
        "shortest": approx(min(lengths)),
        "longest": approx(max(lengths)),
    }
    return [scene.ask("mean_length", "mean_length", **values)]


def _size_ratio(scene: Scene) -> list[Turn] | None:
    """How many times the area of one visible whole member is another's (≥ LARGEST_MARGIN)."""
    candidates = [f for f in scene.seen(scene.members) if not f.truncated]
    if len(candidates) < 2:
        return None
    a, b = scene.rng.sample(candidates, 2)
    if a.area_px < b.area_px:
        a, b = b, a
    ratio = a.area_px / b.area_px
    if ratio < LARGEST_MARGIN:
        return None
    values = {"ref_a": ref(a), "ref_b": ref(b), "ratio": approx(ratio, RATIO_STEPS)}
    return [scene.ask("size_ratio", "size_ratio", **values)]


def _named(fact: ObjectFacts) -> str:
    return f"the {singular(fact)} {ref(fact)}"


def _chain(scene: Scene) -> list[Turn] | None:
    """A left of B, B left of C, so A left of C (or any one side): three turns."""
    visible = scene.seen(scene.facts)
    if len(visible) < 3:
        return None
    chosen = scene.rng.sample(visible, min(len(visible), MAX_CHAIN_CANDIDATES))
    sides = fact_words()["side"]
    for a, b, c in itertools.permutations(chosen, 3):
        first, second, closing = relation(a, b), relation(b, c), relation(a, c)
        for axis in ("horizontal", "vertical"):
            side = getattr(first, axis)
            if side is None or getattr(second, axis) != side or getattr(closing, axis) != side:
                continue
            values = {"a": _named(a), "b": _named(b), "c": _named(c), "side": sides[side]}
            return [
                scene.ask("chain_first", "chain_first", **values),
                scene.ask("chain_second", "chain_second", **values),
                scene.ask("chain_third", "chain_third", **values),
            ]
    return None


def _distance_pair(scene: Scene) -> tuple[ObjectFacts, ObjectFacts, ObjectFacts] | None:
    visible = scene.seen(scene.facts)
    if len(visible) < 3:
        return None
    a, b, c = scene.rng.sample(visible, 3)
    return a, b, c


def _centre_distance(a: ObjectFacts, b: ObjectFacts) -> float:
    return math.hypot(a.centre[0] - b.centre[0], a.centre[1] - b.centre[1])


def _distance_sum(scene: Scene) -> list[Turn] | None:
    """Two centre distances in metres, then the route A → B → C: their sum."""
    if scene.gsd is None or (trio := _distance_pair(scene)) is None:
        return None
    a, b, c = trio
    first, second = _centre_distance(a, b) * scene.gsd, _centre_distance(b, c) * scene.gsd
    values = {
        "a": _named(a),
        "b": _named(b),
        "c": _named(c),
        "first": approx(first),
        "second": approx(second),
        "sum": approx(first + second),
    }
    return [
        scene.ask("distance_first", "distance_first", **values),
        scene.ask("distance_second", "distance_second", **values),
        scene.ask("distance_sum", "distance_sum", **values),
    ]


def _distance_compare(scene: Scene) -> list[Turn] | None:
    """Which of B and C is nearer to A, when clearly so (``NEAREST_MARGIN``)."""
    if (trio := _distance_pair(scene)) is None:
        return None
    a, b, c = trio
    near, far = sorted((b, c), key=lambda f: _centre_distance(a, f))
    if _centre_distance(a, far) < NEAREST_MARGIN * _centre_distance(a, near):
        return None
    values: dict[str, object] = {"a": _named(a), "b": _named(b), "c": _named(c)}
    values |= {"near": _named(near), "far": _named(far)}
    if scene.gsd is None:
        return [scene.ask("distance_compare", "distance_compare", **values)]
    values["near_distance"] = approx(_centre_distance(a, near) * scene.gsd)
    values["far_distance"] = approx(_centre_distance(a, far) * scene.gsd)
    return [scene.ask("distance_compare", "distance_compare_metres", **values)]


def _unique_minimum(values: list[float]) -> int | None:
    """Index of the smallest value if the runner-up is NEAREST_MARGIN times larger, else None."""
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


def _closest_other(scene: Scene) -> list[Turn] | None:
    """Which member is closest to any object of the other class (both clearly nearest)."""
    if not scene.exact or scene.other is None or len(scene.members) < 2:
        return None
    targets = [f for f in scene.facts if f.category == scene.other]
    best = _unique_minimum(_closest_distances(scene.members, targets))
    if best is None:
        return None
    member = scene.members[best]
    found = nearest(member, targets)
    if found is None or member.id not in scene.visible or found[0].id not in scene.visible:
        return None
    values: dict[str, object] = {"ref": ref(member), "other_ref": ref(found[0])}
    if scene.gsd is None:
        return [scene.ask("closest_other", "closest_other", **values)]
    values["distance"] = approx(found[1] * scene.gsd)
    return [scene.ask("closest_other", "closest_other_distance", **values)]


def _closest_pair(scene: Scene) -> list[Turn] | None:
    """The two members nearest to each other, if clearly nearer than any other pair."""
    members = scene.members
    if not scene.exact or len(members) < 2:
        return None
    pairs = list(itertools.combinations(members, 2))
    distances = pdist(np.array([f.centre for f in members])).tolist()  # in the pairs' order
    best = _unique_minimum(distances)
    if best is None:
        return None
    a, b = pairs[best]
    if a.id not in scene.visible or b.id not in scene.visible:
        return None
    values: dict[str, object] = {"ref_a": ref(a), "ref_b": ref(b)}
    if scene.gsd is None:
        return [scene.ask("closest_pair", "closest_pair", **values)]
    values["distance"] = approx(distances[best] * scene.gsd)
    return [scene.ask("closest_pair", "closest_pair_distance", **values)]


def _grouped(scene: Scene) -> list[Turn] | None:
    """Clusters of the class (layout rules); asked for three or more exactly counted objects."""
    if not scene.exact or len(scene.members) < 3:
        return None
    by_id = {f.id: f for f in scene.members}
    groups = [[by_id[i] for i in cluster] for cluster in scene.arrangement.clusters]
    if not groups:
        return [scene.ask("grouped", "spread")]
    if len(groups) == 1 and len(groups[0]) == len(scene.members):
        return [scene.ask("grouped", "grouped_all")]
    if any(f.id not in scene.visible for group in groups for f in group):
        return None
    if len(groups) == 1:
        refs = join_fact_refs(groups[0])
        return [scene.ask("grouped", "grouped_some", grouped=len(groups[0]), refs=refs)]
    refs = "; ".join(join_fact_refs(group) for group in groups)
    return [scene.ask("grouped", "grouped_many", groups=len(groups), refs=refs)]


def _largest(scene: Scene) -> list[Turn] | None:
    """The member of largest area, clearly larger than the others (see ``layout.largest``)."""
    if not scene.exact or (found := largest(scene.members)) is None:
        return None
    best, all_whole = found
    if best.id not in scene.visible:
        return None
    key = "largest" if all_whole else "largest_inside"
    if best.length_m is not None:
        return [scene.ask("largest", f"{key}_length", ref=ref(best), length=approx(best.length_m))]
    return [scene.ask("largest", key, ref=ref(best))]


def _row(scene: Scene) -> list[Turn] | None:
    """A row of the focus class (existential, so partial labels may say it too)."""
    if scene.form is None or len(scene.members) < 3 or not scene.arrangement.rows:
        return None
    by_id = {f.id: f for f in scene.members}
    row = [by_id[i] for i in scene.arrangement.rows[0].ids]
    if any(f.id not in scene.visible for f in row):
        return None
    orientation = scene.arrangement.rows[0].orientation
    if orientation is None:
        return [scene.ask("row", "row", refs=join_fact_refs(row))]
    direction = fact_words()["row"][orientation]
    return [scene.ask("row", "row_direction", refs=join_fact_refs(row), direction=direction)]


PATTERNS: dict[str, Callable[[Scene], list[Turn] | None]] = {
    "count": _count,
    "compare": _compare,
    "difference": _difference,
    "total": _total,
    "total_area": _total_area,
    "mean_length": _mean_length,
    "size_ratio": _size_ratio,
    "chain": _chain,
    "distance_sum": _distance_sum,
    "distance_compare": _distance_compare,
    "closest_other": _closest_other,
    "closest_pair": _closest_pair,
    "grouped": _grouped,
    "largest": _largest,
    "row": _row,
}
