"""A small synthetic DOTA-format scene set, bundled for ``rsgpt4v demo`` and the README quick start.

Real DOTA images cannot be redistributed and weigh gigabytes, yet a new user should be able to run
the whole pipeline (convert, instruct, validate, export) in seconds without a download.
:func:`make_sample` paints five small GeoTIFF scenes at 0.5 m GSD with objects of seven DOTA v1.0
classes at their real pixel sizes. It writes the labels the way DOTA does (CRLF, two header lines,
corners clockwise on screen), so the demo runs the same converter as the real dataset. It also
contains the quirks a converter must survive: a non-square scene, a scene with no objects (a
header-only label file), an object that runs past the image edge, and two difficult objects.

Each scene is first laid out as numbers (:class:`Scene`). Drawing, the label file and the captions
are all derived from that layout, so labels, pixels and captions cannot disagree. All randomness
comes from ``numpy.random.default_rng(seed + scene index)``, so a seed always gives the same files.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image, ImageDraw

from rsgpt4v.errors import InputError
from rsgpt4v.geometry import obb_to_polygon

SAMPLE_CRS = "EPSG:32633"  # UTM zone 33N (projected, metres)
SAMPLE_GSD = 0.5
SAMPLE_SOURCE = "rsgpt4v-synthetic"
MIN_SIZE = 192  # the layouts place objects of fixed pixel size; below this they would collide

Colour = tuple[int, int, int]

#: One flat colour per class, so a viewer (and the tests) can tell the classes apart.
CLASS_COLOURS: dict[str, Colour] = {
    "small-vehicle": (205, 40, 40),
    "large-vehicle": (240, 200, 40),
    "storage-tank": (232, 228, 210),
    "tennis-court": (45, 145, 105),
    "swimming-pool": (40, 160, 230),
    "plane": (246, 246, 250),
    "ship": (230, 130, 60),
}
ASPHALT, LOT, CONCRETE, GRAVEL = (92, 92, 98), (70, 70, 76), (168, 168, 162), (150, 140, 120)
WATER, TREE, DECK, MARKING = (32, 62, 92), (38, 66, 34), (214, 208, 196), (235, 235, 230)
ROOF, ROOF_SHADE = (160, 88, 72), (120, 64, 54)
FIELDS = ((120, 95, 70), (110, 140, 60), (190, 170, 110))  # ploughed, green crop, stubble
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SUPERSAMPLE = 4  # polygons are filled at 4x and averaged down: sub-pixel accurate, soft edges


@dataclass(frozen=True)
class Paint:
    """One filled polygon of the picture, in label pixel coordinates (pixel i spans [i, i + 1))."""

    points: np.ndarray
    colour: Colour


@dataclass(frozen=True)
class SceneObject:
    """A labelled object: the DOTA quad its label line gets, and the paints that draw it."""

    category: str
    quad: np.ndarray
    paints: tuple[Paint, ...]
    difficult: int = 0


@dataclass
class Scene:
    """Everything one picture holds, as numbers, before anything is drawn or written."""

    width: int
    height: int
    setting: str  # what the captions call the place, e.g. "an airport apron"
    ground: list[Paint] = field(default_factory=list)  # unlabelled surfaces under the objects
    objects: list[SceneObject] = field(default_factory=list)
    cover: list[Paint] = field(default_factory=list)  # tree crowns drawn over the objects


def _placed(local: list[list[float]], cx: float, cy: float, angle: float) -> np.ndarray:
    """Points from an object's own frame, turned clockwise on screen by angle, moved to (cx, cy)."""
    theta = math.radians(angle)
    rotation = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    return np.asarray(local, dtype=float) @ rotation + np.array([cx, cy])


def _box(
    cx: float,
    cy: float,
    w: float,
    h: float,
    angle: float,
    colour: Colour,
    dx: float = 0.0,
    dy: float = 0.0,
) -> Paint:
    """A rotated rectangle, offset by (dx, dy) in the frame of a parent centred at (cx, cy)."""
    ((x, y),) = _placed([[dx, dy]], cx, cy, angle)
    return Paint(obb_to_polygon(x, y, w, h, angle), colour)


def _disc(cx: float, cy: float, radius: float, colour: Colour) -> Paint:
    """A circle as a 48-gon, fine enough that nobody sees the corners at these sizes."""
    theta = np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False)
    points = np.column_stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)])
    return Paint(points, colour)


def _small_vehicle(cx: float, cy: float, angle: float, difficult: int = 0) -> SceneObject:
    """A car, 4.5 x 2 m; the dark windscreen marks the front (+x of its frame)."""
    body = _box(cx, cy, 9, 4, angle, CLASS_COLOURS["small-vehicle"])
    glass = _box(cx, cy, 2, 3, angle, (50, 55, 65), dx=1.5)
    return SceneObject("small-vehicle", body.points, (body, glass), difficult)


def _large_vehicle(cx: float, cy: float, angle: float) -> SceneObject:
    """A truck, 12 x 3 m, with a white cab at the front."""
    body = _box(cx, cy, 24, 6, angle, CLASS_COLOURS["large-vehicle"])
    cab = _box(cx, cy, 5, 6, angle, (225, 225, 225), dx=9.5)
    return SceneObject("large-vehicle", body.points, (body, cab))


def _storage_tank(cx: float, cy: float, diameter: float) -> SceneObject:
    """A round tank with its shadow; DOTA labels a tank by its axis-aligned bounding square."""
    r = diameter / 2
    shadow = _disc(cx + 0.2 * r, cy + 0.2 * r, r, (45, 45, 40))
    tank = _disc(cx, cy, r, CLASS_COLOURS["storage-tank"])
    roof = _disc(cx, cy, 0.75 * r, (214, 210, 190))
    square = obb_to_polygon(cx, cy, diameter, diameter, 0.0)
    return SceneObject("storage-tank", square, (shadow, tank, roof))


def _tennis_court(cx: float, cy: float, angle: float) -> SceneObject:
    """A 24 x 11 m hard court with its white lines (sidelines, baselines, service lines, net)."""

    def line(w: float, h: float, dx: float = 0.0, dy: float = 0.0) -> Paint:
        return _box(cx, cy, w, h, angle, MARKING, dx, dy)

    court = _box(cx, cy, 48, 22, angle, CLASS_COLOURS["tennis-court"])
    lines = [
        line(40, 1, dy=-9),
        line(40, 1, dy=9),
        line(1, 18, dx=-20),
        line(1, 18, dx=20),
        line(1, 14, dx=-11),
        line(1, 14, dx=11),
        line(22, 1),
        line(1, 20),
    ]
    return SceneObject("tennis-court", court.points, (court, *lines))


def _swimming_pool(cx: float, cy: float, w: float, h: float, angle: float) -> SceneObject:
    """A pool with a light deck around it; the label covers the water only."""
    deck = _box(cx, cy, w + 4, h + 4, angle, DECK)
    water = _box(cx, cy, w, h, angle, CLASS_COLOURS["swimming-pool"])
    return SceneObject("swimming-pool", water.points, (deck, water))


def _plane(cx: float, cy: float, angle: float) -> SceneObject:
    """A 30 m airliner as a cross (fuselage, wings, tail); the label is its rotated bounding box."""
    colour = CLASS_COLOURS["plane"]
    parts = (
        _box(cx, cy, 60, 7, angle, colour),
        _box(cx, cy, 10, 58, angle, colour, dx=4),
        _box(cx, cy, 6, 22, angle, colour, dx=-26),
    )
    return SceneObject("plane", obb_to_polygon(cx, cy, 60, 58, angle), parts)


def _ship(
    cx: float, cy: float, length: float, beam: float, angle: float, difficult: int = 0
) -> SceneObject:
    """A hull with a pointed bow (+x of its frame) and a white bridge near the stern."""
    a, b = length / 2, beam / 2
    hull = _placed([[-a, -b], [a - beam, -b], [a, 0], [a - beam, b], [-a, b]], cx, cy, angle)
    bridge = _box(cx, cy, 0.15 * length, 0.7 * beam, angle, (235, 235, 235), dx=-0.3 * length)
    paints = (Paint(hull, CLASS_COLOURS["ship"]), bridge)
    return SceneObject("ship", obb_to_polygon(cx, cy, length, beam, angle), paints, difficult)


def _road(cx: float, cy: float, length: float, width: float, angle: float) -> list[Paint]:
    """Asphalt with a dashed centre line."""
    offsets = np.arange(-length / 2, length / 2, 12)
    dashes = [_box(cx, cy, 6, 1, angle, MARKING, dx=dx) for dx in offsets]
    return [_box(cx, cy, length, width, angle, ASPHALT), *dashes]


def _house(cx: float, cy: float) -> list[Paint]:
    """A gabled roof: two halves, one in the sun and one in shade."""
    return [_box(cx, cy, 22, 9, 0, ROOF, dy=-4.5), _box(cx, cy, 22, 9, 0, ROOF_SHADE, dy=4.5)]


def _trees(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> list[Paint]:
    """Tree crowns of 5-8 px radius (2.5-4 m), jittered around the given points."""
    return [
        _disc(x + rng.uniform(-2, 2), y + rng.uniform(-2, 2), rng.uniform(5, 8), TREE)
        for x, y in zip(xs, ys, strict=True)
    ]


def _parking_scene(rng: np.random.Generator, w: int, h: int) -> Scene:
    """A road, a parking lot with a row of cars (one under a tree), a truck entering across the
    left edge (the object that runs past the border) and two tanks on a concrete pad."""
    road_y, lot_y = 0.3 * h, 0.3 * h + 30
    scene = Scene(w, h, "a parking lot beside a road")
    scene.ground += [
        *_road(w / 2, road_y, w + 20, 16, 0),
        _box(0.45 * w, lot_y, 0.6 * w, 36, 0, LOT),
        _box(0.74 * w, 0.8 * h, 0.42 * w, 0.3 * h, 0, CONCRETE),
    ]
    for i in range(int(rng.integers(5, 8))):
        x = 0.2 * w + 12 * i
        scene.ground.append(_box(x + 6, lot_y, 1, 14, 0, MARKING))
        scene.objects.append(
            _small_vehicle(
                x + rng.uniform(-1, 1), lot_y + rng.uniform(-1, 1), 90 + rng.uniform(-5, 5)
            )
        )
    scene.objects.append(_small_vehicle(0.7 * w, lot_y, 90, difficult=1))
    scene.cover.append(_disc(0.7 * w + 4, lot_y - 2, 6, TREE))
    scene.objects += [_large_vehicle(5, road_y + 4, 0), _small_vehicle(0.6 * w, road_y - 4, 180)]
    scene.objects += [
        _storage_tank(x, 0.8 * h, int(rng.integers(22, 41))) for x in (0.62 * w, 0.86 * w)
    ]
    roadside = np.arange(10, w, 22)
    scene.cover += _trees(rng, roadside, np.full(len(roadside), road_y - 19))
    scene.cover += _trees(
        rng, np.array([0.1, 0.2, 0.3, 0.15]) * w, np.array([0.75, 0.8, 0.78, 0.9]) * h
    )
    return scene


def _residential_scene(rng: np.random.Generator, w: int, h: int) -> Scene:
    """Houses with pools west of a north-south road, tennis courts east of it, cars on the road."""
    road_x = 0.5 * w
    scene = Scene(w, h, "a residential area crossed by a road")
    scene.ground += _road(road_x, h / 2, h + 20, 14, 90)
    for y in (0.2 * h, 0.5 * h, 0.8 * h):
        scene.ground += _house(road_x - 36, y)
        size = rng.integers((14, 8), (22, 12))
        scene.objects.append(_swimming_pool(road_x - 80, y, *size, rng.uniform(-8, 8)))
    scene.ground += _house(road_x + 62, 0.5 * h)
    scene.objects += [
        _tennis_court(road_x + 62, y, rng.uniform(-5, 5)) for y in (0.28 * h, 0.72 * h)
    ]
    scene.objects += [
        _small_vehicle(road_x - 3.5, 0.35 * h, 90),  # southbound, right-hand traffic
        _small_vehicle(road_x + 3.5, 0.75 * h, -90),
    ]
    scene.cover += _trees(rng, np.full(5, 0.06 * w), np.linspace(0.1, 0.9, 5) * h)
    return scene


def _airport_scene(rng: np.random.Generator, w: int, h: int) -> Scene:
    """Two airliners on a concrete apron with a fuel truck and three service cars."""
    scene = Scene(w, h, "an airport apron")
    scene.ground += [
        _box(w / 2, 0.42 * h, w + 4, 0.64 * h, 0, CONCRETE),
        _box(w / 2, 0.1 * h + 6, w + 4, 1, 0, (220, 190, 60)),
        *_road(w / 2, 0.88 * h, w + 20, 14, 0),
    ]
    scene.objects += [
        _plane(0.3 * w, 0.38 * h, rng.uniform(20, 40)),
        _plane(0.72 * w, 0.38 * h, rng.uniform(-120, -100)),
        _large_vehicle(0.52 * w, 0.65 * h, rng.uniform(-10, 10)),
    ]
    scene.objects += [
        _small_vehicle(0.15 * w + 14 * i, 0.66 * h, 90 + rng.uniform(-8, 8)) for i in range(3)
    ]
    return scene


def _harbour_scene(rng: np.random.Generator, w: int, h: int) -> Scene:
    """An oil depot with three tanks, a coastal road with a truck, a quay and three ships on the
    water, one of them a tiny boat marked difficult."""
    shore = 0.58 * w
    coast = [[shore + rng.uniform(-3, 0), y] for y in np.linspace(-2, h + 2, 9)]
    scene = Scene(w, h, "a harbour next to an oil depot")
    scene.ground += [
        _box(0.21 * w, 0.33 * h, 0.4 * w, 0.6 * h, 0, GRAVEL),
        *_road(0.45 * w, h / 2, h + 20, 14, 90),
        _box(shore - 6, h / 2, 14, h + 4, 0, CONCRETE),
        Paint(np.array([*coast, [w + 2, h + 2], [w + 2, -2]]), WATER),
    ]
    scene.objects += [
        _storage_tank(x * w, y * h, int(rng.integers(20, 33)))
        for x, y in ((0.12, 0.2), (0.3, 0.2), (0.2, 0.5))
    ]
    scene.objects += [
        _large_vehicle(0.45 * w - 3.5, 0.75 * h, 90),
        _ship(0.78 * w, 0.28 * h, 46, 12, 90 + rng.uniform(-10, 10)),
        _ship(0.8 * w, 0.65 * h, 30, 8, rng.uniform(-70, -50)),
        _ship(0.68 * w, 0.9 * h, 10, 4, rng.uniform(0, 180), difficult=1),
    ]
    return scene


def _farmland_scene(rng: np.random.Generator, w: int, h: int) -> Scene:
    """Ploughed and cropped fields cut by a diagonal road and a hedge row: no labelled objects."""
    scene = Scene(w, h, "farmland crossed by a road")
    for cx, cy in ((0.25, 0.25), (0.75, 0.28), (0.28, 0.75), (0.74, 0.74)):
        colour = FIELDS[int(rng.integers(len(FIELDS)))]
        furrow = tuple(int(0.8 * c) for c in colour)
        scene.ground.append(_box(cx * w, cy * h, 0.4 * w, 0.36 * h, 0, colour))
        scene.ground += [
            _box(cx * w, cy * h, 0.4 * w, 1.5, 0, furrow, dy=dy)
            for dy in np.arange(-0.18 * h + 2, 0.18 * h, 4)
        ]
    scene.ground += _road(w / 2, h / 2, 1.5 * w, 14, rng.uniform(20, 35))
    scene.cover += _trees(rng, np.linspace(0.05, 0.95, 8) * w, np.full(8, 0.52 * h))
    return scene


_LAYOUTS: tuple[Callable[[np.random.Generator, int, int], Scene], ...] = (
    _parking_scene,
    _residential_scene,
    _airport_scene,
    _harbour_scene,
    _farmland_scene,
)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Standard-normal noise varying over ``cell`` pixels: field-scale patches, not static."""
    coarse = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def draw_scene(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene as an (H, W, 3) uint8 picture: textured grass and soil, then every paint in order.

    Polygons are filled on a 4x canvas and averaged down, which keeps them within ~0.15 px of the
    label coordinates (PIL alone rounds to whole pixels) and softens edges like a real sensor.
    """
    w, h, s = scene.width, scene.height, _SUPERSAMPLE
    soil = np.clip(_smooth_noise(rng, w, h, 48) * 0.8, 0, 1)[..., None]
    ground = np.multiply((88, 112, 62), 1 - soil) + np.multiply((142, 118, 88), soil)
    ground += (_smooth_noise(rng, w, h, 4) * 6 + rng.normal(0, 4, (h, w)))[..., None]
    canvas = Image.fromarray(np.clip(np.rint(ground), 0, 255).astype(np.uint8)).resize(
        (w * s, h * s), Image.Resampling.NEAREST
    )
    pen = ImageDraw.Draw(canvas)
    for paint in [*scene.ground, *(p for obj in scene.objects for p in obj.paints), *scene.cover]:
        pen.polygon((paint.points * s).ravel().tolist(), fill=paint.colour)
    pixels = np.asarray(canvas.reduce(s), dtype=np.float64) + rng.normal(0, 3, (h, w, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def format_dota_label(objects: list[SceneObject]) -> bytes:
    """A DOTA v1.0 OBB label file: two header lines, one line per object, CRLF everywhere."""
    lines = [f"imagesource:{SAMPLE_SOURCE}", f"gsd:{SAMPLE_GSD}"]
    for obj in objects:
        coords = " ".join(f"{round(float(v), 1) + 0.0:.1f}" for v in obj.quad.ravel())  # no "-0.0"
        lines.append(f"{coords} {obj.category} {obj.difficult}")
    return "".join(f"{line}\r\n" for line in lines).encode("ascii")


def _counted(counts: Counter[str], numeral: Callable[[int], str]) -> str:
    """'six small vehicles, one large vehicle and two storage tanks', in first-seen order."""
    parts = [
        f"{numeral(n)} {category.replace('-', ' ')}{'s' if n > 1 else ''}"
        for category, n in counts.items()
    ]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def caption_scene(scene: Scene) -> list[str]:
    """Two captions written from the layout, so every count in them equals the label count."""
    counts = Counter(obj.category for obj in scene.objects)
    if not counts:
        return [
            f"An aerial view of {scene.setting}, with no vehicles or other objects.",
            f"A 0.5 m resolution overhead image of {scene.setting}; no objects are visible.",
        ]
    words = _counted(counts, lambda n: _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n))
    digits = _counted(counts, str)
    verb = "is" if len(scene.objects) == 1 else "are"
    return [
        f"An aerial view of {scene.setting} with {words}.",
        f"A 0.5 m resolution overhead image of {scene.setting}: {digits} {verb} visible.",
    ]


def _write_geotiff(path: Path, pixels: np.ndarray, index: int) -> None:
    """A deflate-compressed RGB GeoTIFF in UTM 33N; scenes sit 1 km apart so none overlap."""
    west, north = 500_000.0 + 1000.0 * index, 4_650_000.0  # top-left corner, north-up
    transform = Affine.translation(west, north) @ Affine.scale(SAMPLE_GSD, -SAMPLE_GSD)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=pixels.shape[1],
        height=pixels.shape[0],
        count=3,
        dtype="uint8",
        crs=SAMPLE_CRS,
        transform=transform,
        compress="deflate",
        photometric="RGB",
    ) as dst:
        dst.write(pixels.transpose(2, 0, 1))


def make_sample(out_dir: Path, *, seed: int = 0, size: int = 256) -> Path:
    """Write the sample to ``out_dir`` (images/, labelTxt/, captions.json) and return ``out_dir``.

    Scene 1 is ``1.25 size`` wide and ``0.875 size`` high (320 x 224 at the default) so aspect
    ratios get exercised. The same seed and size always give byte-identical files.
    """
    if size < MIN_SIZE:
        raise InputError(f"sample scenes need at least {MIN_SIZE} px", entry="size", value=size)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labelTxt").mkdir(parents=True, exist_ok=True)
    captions: dict[str, list[str]] = {}
    for index, layout in enumerate(_LAYOUTS):
        rng = np.random.default_rng(seed + index)
        width, height = (size * 5 // 4, size * 7 // 8) if index == 1 else (size, size)
        scene = layout(rng, width, height)
        name = f"scene_{index:02d}"
        _write_geotiff(out_dir / "images" / f"{name}.tif", draw_scene(scene, rng), index)
        (out_dir / "labelTxt" / f"{name}.txt").write_bytes(format_dota_label(scene.objects))
        captions[f"images/{name}.tif"] = caption_scene(scene)
    text = json.dumps(captions, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    (out_dir / "captions.json").write_text(text, encoding="utf-8")
    return out_dir
