"""How objects sit relative to each other: arrangements per class and relations between objects.

Built on :class:`rsgpt4v.instruct.attributes.ObjectFacts`. Every rule and threshold is a module
constant, so a test can recompute each claim; a claim that would be a near-tie is not made.

Arrangements (per class, at most ``MAX_ARRANGEMENT_OBJECTS`` objects, else none are claimed):

- clusters: single-linkage grouping of the centres, linked when closer than
  ``CLUSTER_LINK_FACTOR`` times the class's median object size (``ObjectFacts.size_px``); a
  cluster has at least ``CLUSTER_MIN_OBJECTS`` members.
- rows: a cluster whose centres all lie within ``ROW_MAX_OFFSET_FACTOR`` times the median size of
  their least-squares line; its direction is named like an object's orientation.
- position: the grid cell holding more than half of the class's objects, if one does.
- density: objects per hectare (10,000 m²) of the image's ground area, when the GSD is known.

Relations (between object centres; distances are centre to centre, in metres with a GSD):

- left/right (above/below): claimed when the centres differ along x (y) by more than
  ``SIDE_MARGIN_FACTOR`` times the mean extent of the two boxes along that axis.
- nearest: the closest candidate, claimed when the runner-up is at least ``NEAREST_MARGIN`` times
  farther.
- largest: the object of largest pixel area (``ObjectFacts.area_px``) among those not truncated,
  claimed when it is ``LARGEST_MARGIN`` times larger than the runner-up; with truncated objects
  around (whose size is unknown) the claim is "largest fully inside the image".
- side: where A lies from B as one word of eight (``left``, ``above right`` …): the left/right
  and above/below claims above combined; none when both are near-ties.
- neighbours: the objects whose centre is within ``NEIGHBOUR_FACTOR`` times the larger of the
  two objects' sizes (``ObjectFacts.size_px``) of an object's centre.
- between: C is between A and B when its centre projects onto the segment AB at a fraction within
  ``BETWEEN_SPAN`` and lies off the segment by at most ``BETWEEN_MAX_OFFSET`` times ``|AB|``;
  it is clearly not between when it projects beyond A or B, or lies off the segment by more
  than ``BETWEEN_CLEAR_OFFSET`` times ``|AB|`` (cases in between are not claimed either way).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rsgpt4v.instruct.attributes import ObjectFacts, direction_name, grid_positions, is_north_up
from rsgpt4v.schema import ImageInfo

CLUSTER_LINK_FACTOR = 1.5
CLUSTER_MIN_OBJECTS = 3
ROW_MAX_OFFSET_FACTOR = 0.25
MAX_ARRANGEMENT_OBJECTS = 200  # grouping is quadratic; bigger classes get no arrangement
HECTARE_M2 = 10_000.0
SIDE_MARGIN_FACTOR = 0.5
NEAREST_MARGIN = 1.2
BETWEEN_SPAN = (0.2, 0.8)
BETWEEN_MAX_OFFSET = 0.15
BETWEEN_CLEAR_OFFSET = 0.4  # "not between" only when clearly so: beyond an end, or this far off
LARGEST_MARGIN = 1.2  # the largest object's area must exceed the runner-up's by this factor
MAX_RELATION_OBJECTS = 12  # objects whose pairs pair_relations compares (66 pairs)
NEIGHBOUR_FACTOR = 2.0  # centres this many object sizes apart, or closer, are neighbours
SMALL_CLUSTER = 24  # up to this many centres, clusters are found in plain Python (else numpy)


@dataclass(frozen=True)
class Row:
    ids: tuple[int, ...]  # in order along the row
    orientation: str | None


@dataclass(frozen=True)
class ClassArrangement:
    category: str
    ids: tuple[int, ...]
    position: str | None
    clusters: tuple[tuple[int, ...], ...]  # largest first
    rows: tuple[Row, ...]
    density_per_hectare: float | None

    @property
    def count(self) -> int:
        return len(self.ids)


class PairRelation(NamedTuple):
    """Where object ``a`` is relative to object ``b``.

    A named tuple rather than a frozen dataclass: the relations rule makes one per pair it
    tries, and a frozen dataclass sets each field through ``object.__setattr__``.
    """

    a: int
    b: int
    horizontal: str | None  # "left" | "right" | None (a near-tie)
    vertical: str | None  # "above" | "below" | None
    distance_px: float
    distance_m: float | None


def class_arrangements(
    facts: Sequence[ObjectFacts], image: ImageInfo, limit: int | None = None
) -> list[ClassArrangement]:
    """The arrangement of each class (of the ``limit`` first), most numerous first, then by name."""
    groups: dict[str, list[ObjectFacts]] = {}
    for fact in facts:
        groups.setdefault(fact.category, []).append(fact)
    order = sorted(groups, key=lambda c: (-len(groups[c]), c))
    return [arrangement_of(groups[c], image) for c in order[:limit]]


def arrangement_of(members: Sequence[ObjectFacts], image: ImageInfo) -> ClassArrangement:
    """Clusters, rows, majority cell and density of one class's objects."""
    ids = tuple(f.id for f in members)
    cells: dict[str, int] = {}
    for fact in members:
        if fact.position is not None:
            cells[fact.position] = cells.get(fact.position, 0) + 1
    majority = [cell for cell, n in cells.items() if 2 * n > len(members)]
    density = None
    if image.gsd is not None:
        density = len(members) / (image.width * image.height * image.gsd**2 / HECTARE_M2)
    clusters: tuple[tuple[int, ...], ...] = ()
    rows: tuple[Row, ...] = ()
    if CLUSTER_MIN_OBJECTS <= len(members) <= MAX_ARRANGEMENT_OBJECTS:
        centres = [f.centre for f in members]
        size = statistics.median(f.size_px for f in members)
        groups: dict[int, list[int]] = {}
        for i, label in enumerate(_cluster_labels(centres, CLUSTER_LINK_FACTOR * size)):
            groups.setdefault(label, []).append(i)
        found = [index for _, index in sorted(groups.items()) if len(index) >= CLUSTER_MIN_OBJECTS]
        found.sort(key=lambda index: (-len(index), ids[index[0]]))
        clusters = tuple(tuple(ids[i] for i in index) for index in found)
        north_up = is_north_up(image)
        rows = tuple(
            row
            for index in found
            if (
                row := _row(
                    np.array([centres[i] for i in index]), [ids[i] for i in index], size, north_up
                )
            )
            is not None
        )
    return ClassArrangement(
        category=members[0].category,
        ids=ids,
        position=majority[0] if majority else None,
        clusters=clusters,
        rows=rows,
        density_per_hectare=density,
    )


def cluster_labels(centres: np.ndarray, link_distance: float) -> np.ndarray:
    """Single-linkage cluster of each centre: chains of links shorter than link_distance.

    The clusters of single linkage cut at a distance are the connected components of the
    "closer than" graph, found here by min-label propagation with pointer jumping: for the few
    dozen objects of a class this is ~20x faster than scipy's linkage, whose per-call checks
    dominate at that size (the tests check both agree). Labels are each cluster's smallest index.
    """
    return np.array(
        _cluster_labels([tuple(c) for c in np.asarray(centres).tolist()], link_distance)
    )


def _cluster_labels(centres: Sequence[tuple[float, float]], link_distance: float) -> list[int]:
    """:func:`cluster_labels` of a list of centres: plain Python for the few centres most
    classes have (numpy's cost per call is larger than the work), numpy for more."""
    if len(centres) > SMALL_CLUSTER:
        return _cluster_labels_numpy(np.array(centres), link_distance).tolist()
    labels = list(range(len(centres)))
    for i, (xi, yi) in enumerate(centres):
        for j in range(i + 1, len(centres)):
            xj, yj = centres[j]
            if labels[i] != labels[j] and math.hypot(xi - xj, yi - yj) < link_distance:
                keep, drop = min(labels[i], labels[j]), max(labels[i], labels[j])
                labels = [keep if label == drop else label for label in labels]
    return labels


def _cluster_labels_numpy(centres: np.ndarray, link_distance: float) -> np.ndarray:
    gaps = centres[:, np.newaxis, :] - centres[np.newaxis, :, :]
    linked = np.hypot(gaps[..., 0], gaps[..., 1]) < link_distance
    np.fill_diagonal(linked, True)
    labels = np.arange(len(centres))
    while True:
        merged = np.where(linked, labels[np.newaxis, :], len(centres)).min(axis=1)
        merged = merged[merged]
        if np.array_equal(merged, labels):
            return labels
        labels = merged


def row_offsets(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance of each centre from the least-squares line, position along it, its direction)."""
    centred = centres - centres.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    direction, normal = axes[0], axes[1]
    return np.abs(centred @ normal), centred @ direction, direction


def _row(centres: np.ndarray, ids: list[int], size: float, north_up: bool) -> Row | None:
    offsets, along, direction = row_offsets(centres)
    if offsets.max() > ROW_MAX_OFFSET_FACTOR * size:
        return None
    angle = float(np.degrees(np.arctan2(direction[1], direction[0])))
    ordered = tuple(ids[i] for i in np.argsort(along, kind="stable"))
    return Row(ordered, direction_name(angle, north_up))


def relation(a: ObjectFacts, b: ObjectFacts, gsd: float | None = None) -> PairRelation:
    """Where a is relative to b, by the module's margins."""
    dx, dy = a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]
    margin_x = SIDE_MARGIN_FACTOR * (a.bbox[2] + b.bbox[2]) / 2.0
    margin_y = SIDE_MARGIN_FACTOR * (a.bbox[3] + b.bbox[3]) / 2.0
    distance = math.hypot(dx, dy)
    return PairRelation(
        a.id,
        b.id,
        _side(dx, margin_x, "left", "right"),
        _side(dy, margin_y, "above", "below"),
        distance,
        distance * gsd if gsd is not None else None,
    )


def pair_relations(
    facts: Sequence[ObjectFacts],
    gsd: float | None = None,
    *,
    max_objects: int = MAX_RELATION_OBJECTS,
) -> list[PairRelation]:
    """The relation of each pair (earlier object as ``a``) among the first ``max_objects`` facts.

    Callers pick which objects to compare (e.g. a seeded sample, or the largest); the cap keeps
    the pair count, and so the cost per record, bounded in scenes with thousands of objects.
    """
    chosen = facts[:max_objects]
    return [relation(a, b, gsd) for i, a in enumerate(chosen) for b in chosen[i + 1 :]]


def side_of(a: ObjectFacts, b: ObjectFacts) -> str | None:
    """Where ``a`` lies from ``b``: ``left``, ``above``, ``above left`` …; None for a near-tie."""
    found = relation(a, b)
    parts = [part for part in (found.vertical, found.horizontal) if part is not None]
    return " ".join(parts) or None


def neighbours(target: ObjectFacts, candidates: Sequence[ObjectFacts]) -> list[ObjectFacts]:
    """The candidates (not target) within ``NEIGHBOUR_FACTOR`` object sizes of its centre."""
    tx, ty = target.centre
    found = []
    for candidate in candidates:
        if candidate.id == target.id:
            continue
        reach = NEIGHBOUR_FACTOR * max(target.size_px, candidate.size_px)
        if math.hypot(candidate.centre[0] - tx, candidate.centre[1] - ty) <= reach:
            found.append(candidate)
    return found


def group_position(members: Sequence[ObjectFacts], image: ImageInfo) -> str | None:
    """The grid cell of the mean centre of a group of objects (None near an inner grid line)."""
    centre = np.mean([f.centre for f in members], axis=0)[np.newaxis]
    return grid_positions(centre, np.array([image.width, image.height], dtype=float))[0]


def _side(delta: float, margin: float, before: str, after: str) -> str | None:
    if delta < -margin:
        return before
    if delta > margin:
        return after
    return None


def nearest(
    target: ObjectFacts, candidates: Sequence[ObjectFacts]
) -> tuple[ObjectFacts, float] | None:
    """The candidate nearest to target (not itself) and its pixel distance, if clearly nearest.

    The first of equally near candidates is the nearest (and then not clearly so).
    """
    tx, ty = target.centre
    found, first, second = None, math.inf, math.inf
    for candidate in candidates:
        if candidate.id == target.id:
            continue
        x, y = candidate.centre
        distance = math.hypot(x - tx, y - ty)
        if distance < first:
            found, first, second = candidate, distance, first
        elif distance < second:
            second = distance
    if found is None or second < NEAREST_MARGIN * first:
        return None
    return found, first


def between_split(
    a: ObjectFacts, b: ObjectFacts, candidates: Sequence[ObjectFacts]
) -> tuple[list[ObjectFacts], list[ObjectFacts]]:
    """The candidates (other than a and b) that lie between a and b, and those clearly not.

    A candidate's centre is projected on the segment AB: its fraction along AB and its offset
    from AB over ``|AB|`` decide (see the module docstring). When a and b coincide, none is
    either.
    """
    ax, ay = a.centre
    sx, sy = b.centre[0] - ax, b.centre[1] - ay
    squared = math.hypot(sx, sy) ** 2
    inside: list[ObjectFacts] = []
    outside: list[ObjectFacts] = []
    if squared == 0:
        return inside, outside
    low, high = BETWEEN_SPAN
    for candidate in candidates:
        if candidate.id == a.id or candidate.id == b.id:
            continue
        px, py = candidate.centre[0] - ax, candidate.centre[1] - ay
        fraction = (px * sx + py * sy) / squared
        offset = abs(px * sy - py * sx) / squared
        if low <= fraction <= high and offset <= BETWEEN_MAX_OFFSET:
            inside.append(candidate)
        elif fraction < 0 or fraction > 1 or offset > BETWEEN_CLEAR_OFFSET:
            outside.append(candidate)
    return inside, outside


def objects_between(
    a: ObjectFacts, b: ObjectFacts, candidates: Sequence[ObjectFacts]
) -> list[ObjectFacts]:
    """The candidates (other than a and b) whose centres lie between a and b."""
    return between_split(a, b, candidates)[0]


def objects_not_between(
    a: ObjectFacts, b: ObjectFacts, candidates: Sequence[ObjectFacts]
) -> list[ObjectFacts]:
    """The candidates (other than a and b) whose centres are clearly not between a and b."""
    return between_split(a, b, candidates)[1]


def largest(facts: Sequence[ObjectFacts]) -> tuple[ObjectFacts, bool] | None:
    """The largest object wholly inside the image, if clearly so, and whether all objects are.

    The second value is False when some object is truncated: its size is unknown, so the claim
    must be limited to the objects fully inside the image. The first of equally large objects
    is the largest (and then not clearly so).
    """
    if len(facts) < 2:
        return None
    found, first, second, whole = None, -math.inf, -math.inf, 0
    for fact in facts:
        if fact.truncated:
            continue
        whole += 1
        if fact.area_px > first:
            found, first, second = fact, fact.area_px, first
        elif fact.area_px > second:
            second = fact.area_px
    if found is None or first < LARGEST_MARGIN * second:
        return None
    return found, whole == len(facts)
