"""Which labelled objects a prompt lists, and which of them it shows in crops.

A scene may hold hundreds of objects (a marina of 500 boats) while a reply can describe a few
dozen, and a vision model sees the scene shrunk (``detail low``: 512 px on the longer side, so a
25-px boat of a 1,182-px scene is 11 px). So the object table of the prompts is chosen, not cut:

- **Budget**: at most ``ObjectBudget.max_objects`` rows (default :data:`MAX_LISTED_OBJECTS`) and
  at most ``max_table_bytes`` bytes of table (:data:`TABLE_BYTES`; one token per byte is the
  bound the budget reserves, about a quarter of that is typical). The class counts of the prompt
  always cover every object, and the objects left out are counted by class.
- **Stratified**: the image is split into a :data:`SELECTION_GRID` x :data:`SELECTION_GRID` grid
  (by each object's box centre); the rows are taken round-robin over the cells that hold objects,
  one per cell per round, so every cell with objects is listed (when the budget has at least as
  many rows as such cells) before any cell gets a second row. A cluster of 200 boats in one
  corner fills what the rest of the scene leaves, no more.
- **Ranked**: within a cell, objects not marked ``difficult`` come first; then the largest object
  of each class, then the second largest of each class, and so on (distinct classes before
  repeats), larger (label area in pixels) before smaller. Each round takes the cells' next
  objects in that same order, so the table reads from the largest and most distinct objects down.
- **Seen size**: an object's size is the long side of its oriented box (the longer box side
  without a polygon), times the scale from the source image to what the model sees
  (:class:`View`). A listed object under :data:`MIN_APPEARANCE_PX` in the scene image gets a crop:
  a window of the scene around it at full resolution (at most ``max_crops`` crops, default
  :data:`MAX_CROPS`; one crop covers every listed small object inside it), sent as an extra
  image at ``detail low`` (512 px, the low-detail price). An object still under
  :data:`MIN_APPEARANCE_PX` in a crop (it is that small in the source), or left without one when
  the crops are used up, is marked ``too_small`` in the table, and the prompt asks for no colour,
  material or condition of it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rsgpt4v.errors import InputError
from rsgpt4v.instruct.attributes import GRID_CELLS, ObjectFacts
from rsgpt4v.instruct.llm.images import CROP_READ_MAX_SIDE, CROP_SIDE, seen_scale
from rsgpt4v.instruct.llm.settings import MAX_CROPS, MAX_LISTED_OBJECTS, LlmSettings
from rsgpt4v.schema import ImageInfo

TABLE_BYTES = 8000  # bytes of object table at most (a row takes 110 to 190)
SELECTION_GRID = 4  # cells per side of the grid the rows are spread over
MIN_APPEARANCE_PX = 20  # long side, in the image the model sees, below which appearance is a guess
_FLAG_BYTES = len(',"too_small":true')  # what a row may grow by once crops are planned


@dataclass(frozen=True)
class ObjectBudget:
    """How many objects a prompt lists and how many crops the local pass may add."""

    max_objects: int = MAX_LISTED_OBJECTS
    max_table_bytes: int = TABLE_BYTES
    max_crops: int = MAX_CROPS

    def __post_init__(self) -> None:
        if isinstance(self.max_objects, bool) or self.max_objects < 1:
            raise InputError(f"--max-objects must be at least 1, got {self.max_objects}")
        if isinstance(self.max_crops, bool) or self.max_crops < 0:
            raise InputError(f"--max-crops must not be negative, got {self.max_crops}")

    @classmethod
    def of(cls, settings: LlmSettings) -> ObjectBudget:
        """The budget ``--max-objects`` and ``--max-crops`` set."""
        return cls(settings.max_objects, TABLE_BYTES, settings.max_crops)


@dataclass(frozen=True)
class View:
    """How large the model sees the source pixels: ``scale`` in the scene image (sent size, then
    the API's own resize for the detail level), ``crop_scale`` in a crop."""

    detail: str
    scale: float
    crop_scale: float

    @classmethod
    def of(cls, image: ImageInfo, detail: str = "low", max_side: int | None = None) -> View:
        crop_scale = min(1.0, CROP_READ_MAX_SIDE / max(image.width, image.height))
        return cls(detail, seen_scale(image.width, image.height, detail, max_side), crop_scale)


@dataclass(frozen=True)
class CropWindow:
    """A crop of the scene: its number (1-based; image number + 1), window ``[x, y, w, h]`` in
    source pixels, and the listed objects it is there for."""

    number: int
    window: tuple[int, int, int, int]
    ids: tuple[int, ...]
    where: str  # the 3 x 3 grid cell of the window's centre, in words

    def sent_size(self, crop_scale: float) -> tuple[int, int]:
        _, _, w, h = self.window
        return max(1, round(w * crop_scale)), max(1, round(h * crop_scale))


@dataclass(frozen=True)
class Selection:
    """The listed objects (in table order), the crops, and each listed object's flag."""

    listed: tuple[ObjectFacts, ...]
    crops: tuple[CropWindow, ...] = ()
    crop_of: dict[int, int] | None = None  # object id → crop number
    too_small: frozenset[int] = frozenset()
    omitted: Counter[str] | None = None  # class → objects not listed

    def row_flags(self, object_id: int, crops_shown: bool) -> dict[str, Any]:
        """``{"crop": K}``, ``{"too_small": True}`` or nothing; an object shown in a crop is too
        small where the crops are not sent."""
        crop = (self.crop_of or {}).get(object_id)
        if crop is not None:
            return {"crop": crop} if crops_shown else {"too_small": True}
        return {"too_small": True} if object_id in self.too_small else {}


def table_row(facts: ObjectFacts, flags: dict[str, Any] | None = None) -> str:
    """One object as a compact JSON row: the facts that are known, rounded for reading."""
    row: dict[str, Any] = {"id": facts.id, "category": facts.category}
    row["box"] = [round(v) for v in facts.bbox]
    for name in ("position", "size_class", "orientation", "colour"):
        value = getattr(facts, name)
        if value is not None:
            row[name] = value
    for name in ("length_m", "width_m", "area_m2"):
        value = getattr(facts, name)
        if value is not None:
            row[name] = round(value, 1)
    if facts.truncated:
        row["truncated"] = True
    if facts.difficult:
        row["difficult"] = True
    if flags:
        row |= flags
    return json.dumps(row, separators=(",", ":"))


def select(
    facts: list[ObjectFacts], image: ImageInfo, view: View, budget: ObjectBudget
) -> Selection:
    """The rows of the object table and the crops of the local pass (see the module text)."""
    listed = stratified(facts, image, budget)
    crops, crop_of, too_small = plan_crops(listed, image, view, budget.max_crops)
    chosen = {f.id for f in listed}
    omitted = Counter(f.category for f in facts if f.id not in chosen)
    return Selection(tuple(listed), crops, crop_of, frozenset(too_small), omitted)


def stratified(
    facts: list[ObjectFacts], image: ImageInfo, budget: ObjectBudget
) -> list[ObjectFacts]:
    """Objects round-robin over the grid cells, each cell in rank order, within the budget."""
    cells: dict[tuple[int, int], list[ObjectFacts]] = {}
    for f in facts:
        cells.setdefault(_cell(f, image), []).append(f)
    queues = [_ranked(members) for members in cells.values()]
    listed: list[ObjectFacts] = []
    used = 0
    depth = 0
    while len(listed) < budget.max_objects and any(depth < len(q) for q in queues):
        round_ = sorted((q[depth] for q in queues if depth < len(q)), key=lambda e: e[0])
        for _, f in round_:
            size = len(table_row(f).encode("utf-8")) + _FLAG_BYTES + 1  # + the newline
            if len(listed) >= budget.max_objects or used + size > budget.max_table_bytes:
                return listed
            listed.append(f)
            used += size
        depth += 1
    return listed


def _cell(f: ObjectFacts, image: ImageInfo) -> tuple[int, int]:
    x, y = f.centre
    column = min(max(int(x / image.width * SELECTION_GRID), 0), SELECTION_GRID - 1)
    row = min(max(int(y / image.height * SELECTION_GRID), 0), SELECTION_GRID - 1)
    return row, column


def _ranked(members: list[ObjectFacts]) -> list[tuple[tuple, ObjectFacts]]:
    """(rank key, facts) of a cell's objects, best first: not difficult, the n-th largest of its
    class (largest of each class first), larger, lower id."""
    by_size = sorted(members, key=lambda f: (f.difficult, -f.area_px, f.id))
    nth: Counter[tuple[bool, str]] = Counter()
    keyed = []
    for f in by_size:
        keyed.append(((f.difficult, nth[f.difficult, f.category], -f.area_px, f.id), f))
        nth[f.difficult, f.category] += 1
    return sorted(keyed, key=lambda e: e[0])


def plan_crops(
    listed: list[ObjectFacts], image: ImageInfo, view: View, max_crops: int
) -> tuple[tuple[CropWindow, ...], dict[int, int], set[int]]:
    """Crop windows for the listed objects under :data:`MIN_APPEARANCE_PX` in the scene image;
    the crop of each, and the objects too small to describe anyway.

    Greedy cover: each crop is the window, centred on one of the objects still uncovered, that
    holds the most of them (ties: the earlier object in the table), until every one is covered
    or ``max_crops`` are placed. A window is ``CROP_SIDE`` sent pixels of source (less where the
    image is smaller), moved inside the image.
    """
    side = CROP_SIDE / view.crop_scale  # source pixels a crop covers, sent at CROP_SIDE px
    size = (min(side, image.width), min(side, image.height))
    pending: list[ObjectFacts] = []
    too_small: set[int] = set()
    for f in listed:
        if f.size_px * view.scale >= MIN_APPEARANCE_PX:
            continue
        if f.size_px * view.crop_scale < MIN_APPEARANCE_PX:
            too_small.add(f.id)  # that small in the source: no crop shows more
        else:
            pending.append(f)
    crops: list[CropWindow] = []
    crop_of: dict[int, int] = {}
    while pending and len(crops) < max_crops:
        windows = (_window_around(f.centre, size, image) for f in pending)
        window, inside = max(  # the first of the best: ties go to the earlier object
            ((w, [g for g in pending if _inside(g.bbox, w)]) for w in windows),
            key=lambda candidate: len(candidate[1]),
        )
        if not inside:  # an object larger than a window: no crop shows it whole
            break
        number = len(crops) + 1
        ids = sorted(g.id for g in inside)
        crops.append(CropWindow(number, _pixels(window, image), tuple(ids), _where(window, image)))
        crop_of |= dict.fromkeys(ids, number)
        pending = [g for g in pending if g.id not in crop_of]
    too_small.update(f.id for f in pending)
    return tuple(crops), crop_of, too_small


def _window_around(
    centre: tuple[float, float], size: tuple[float, float], image: ImageInfo
) -> tuple[float, float, float, float]:
    (cx, cy), (width, height) = centre, size
    x = min(max(cx - width / 2, 0.0), image.width - width)
    y = min(max(cy - height / 2, 0.0), image.height - height)
    return x, y, width, height


def _inside(box, window) -> bool:
    x, y, w, h = box
    wx, wy, ww, wh = window
    return wx <= x and wy <= y and x + w <= wx + ww and y + h <= wy + wh


def _pixels(
    window: tuple[float, float, float, float], image: ImageInfo
) -> tuple[int, int, int, int]:
    """The window on whole pixels, its size kept and inside the image."""
    x, y, w, h = window
    width, height = min(round(w), image.width), min(round(h), image.height)
    x0 = min(max(round(x), 0), image.width - width)
    y0 = min(max(round(y), 0), image.height - height)
    return x0, y0, width, height


def _where(window: tuple[float, float, float, float], image: ImageInfo) -> str:
    x, y, w, h = window
    column = min(int((x + w / 2) / image.width * 3), 2)
    row = min(int((y + h / 2) / image.height * 3), 2)
    return GRID_CELLS[row][column]
