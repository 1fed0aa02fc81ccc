from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.enums import ColorInterp

from rsgpt4v.errors import InputError
from rsgpt4v.geometry import obb_to_polygon, polygon_to_obb
from rsgpt4v.instruct import attributes, layout
from rsgpt4v.instruct.attributes import (
    cached_object_facts,
    convex_quad_obbs,
    object_facts,
)
from rsgpt4v.instruct.colour import dominant_colour
from rsgpt4v.schema import ImageInfo, Object, Record

NORTH_UP = {"crs": "EPSG:32633", "transform": [500000.0, 0.5, 0.0, 4650000.0, 0.0, -0.5]}
BGRN = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]


def _record(objects: list[Object], *, gsd: float | None = 0.5, georef: bool = True) -> Record:
    image = ImageInfo(
        path="images/scene.tif", width=1000, height=800, gsd=gsd, **(NORTH_UP if georef else {})
    )
    return Record(id="toy/train/scene", dataset="toy", split="train", image=image, objects=objects)


def _obb_object(
    id: int, category: str, cx: float, cy: float, w: float, h: float, angle: float, **extra
) -> Object:
    polygon = obb_to_polygon(cx, cy, w, h, angle)
    x0, y0 = np.clip(polygon.min(axis=0), 0, None)
    x1, y1 = np.minimum(polygon.max(axis=0), (1000, 800))
    bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    return Object(id=id, category=category, bbox=bbox, polygon=polygon.tolist(), **extra)


def _facts(*objects: Object, **kwargs) -> list[attributes.ObjectFacts]:
    return object_facts(_record(list(objects), **kwargs))


@pytest.mark.parametrize(
    ("centre", "cell"),
    [
        ((100, 100), "top-left"),
        ((500, 100), "top"),
        ((900, 100), "top-right"),
        ((100, 400), "left"),
        ((500, 400), "centre"),
        ((900, 700), "bottom-right"),
        ((500, 700), "bottom"),
        ((340, 400), None),  # 1000/3 = 333.3: within 2 % of the line, no cell is claimed
    ],
)
def test_position_is_the_grid_cell_of_the_box_centre(centre: tuple, cell: str | None) -> None:
    x, y = centre
    (fact,) = _facts(Object(id=0, category="car", bbox=[x - 5, y - 5, 10, 10]))
    assert fact.position == cell


def test_size_class_bins_the_box_area_fraction() -> None:
    image_area = 1000 * 800
    for fraction, expected in [
        (0.0005, "tiny"),
        (0.005, "small"),
        (0.03, "medium"),
        (0.2, "large"),
    ]:
        side = math.sqrt(fraction * image_area)
        (fact,) = _facts(Object(id=0, category="x", bbox=[300, 300, side, side]))
        assert fact.size_class == expected
        assert fact.area_fraction == pytest.approx(fraction)


def test_metric_size_follows_from_the_oriented_box_and_the_gsd() -> None:
    ship = _obb_object(0, "ship", 400, 300, 76, 18, 30)
    (fact,) = _facts(ship, gsd=0.5)
    _, _, w, h, _ = polygon_to_obb(ship.polygon)
    assert fact.length_m == pytest.approx(w * 0.5) and fact.length_m == pytest.approx(38)
    assert fact.width_m == pytest.approx(h * 0.5)
    assert fact.area_m2 == pytest.approx(shapely.Polygon(ship.polygon).area * 0.25)
    assert fact.box_m == pytest.approx((ship.bbox[2] * 0.5, ship.bbox[3] * 0.5))


def test_no_metres_without_gsd_or_for_cut_off_objects() -> None:
    (no_gsd,) = _facts(_obb_object(0, "ship", 400, 300, 76, 18, 30), gsd=None)
    assert no_gsd.length_m is no_gsd.area_m2 is no_gsd.box_m is None
    at_edge = _obb_object(1, "ship", 20, 300, 76, 18, 0)  # its polygon crosses x = 0
    marked = _obb_object(2, "ship", 400, 300, 76, 18, 0, attributes={"truncated": True})
    for fact in _facts(at_edge, marked):
        assert fact.truncated and fact.length_m is None and fact.area_m2 is None


def test_objects_without_a_polygon_have_a_box_extent_but_no_length_or_orientation() -> None:
    (fact,) = _facts(Object(id=0, category="harbor", bbox=[600, 50, 200, 100]))
    assert fact.box_m == (100.0, 50.0)
    assert fact.length_m is fact.area_m2 is fact.orientation is None
    assert fact.area_px == 200 * 100


@pytest.mark.parametrize(
    ("angle", "compass", "screen"),
    [
        (0, "east-west", "horizontal"),
        (90, "north-south", "vertical"),
        (-80, "north-south", "vertical"),
        (45, "northwest-southeast", "falling diagonal"),  # +y is down: pointing south-east
        (-45, "northeast-southwest", "rising diagonal"),
        (135, "northeast-southwest", "rising diagonal"),
        (21, None, None),  # within 5 degrees of the 22.5 bin edge
    ],
)
def test_orientation_of_the_long_side(
    angle: float, compass: str | None, screen: str | None
) -> None:
    ship = _obb_object(0, "ship", 400, 300, 60, 12, angle)
    assert _facts(ship)[0].orientation == compass
    assert _facts(ship, georef=False)[0].orientation == screen


def test_round_objects_have_no_orientation() -> None:
    tank = _obb_object(0, "storage-tank", 400, 300, 30, 28, 30)
    assert _facts(tank)[0].orientation is None


def test_rotated_transform_is_not_north_up() -> None:
    rotated = ImageInfo(
        path="a.tif", width=10, height=10, crs="EPSG:32633", transform=[0, 0.5, 0.1, 0, 0.1, -0.5]
    )
    assert not attributes.is_north_up(rotated)
    assert attributes.is_north_up(_record([]).image)


def test_vectorised_quads_match_polygon_to_obb() -> None:
    rng = np.random.default_rng(7)
    quads = []
    for _ in range(300):
        cx, cy, w, h, angle = (
            *rng.uniform(0, 1000, 2),
            *rng.uniform(2, 100, 2),
            rng.uniform(-180, 180),
        )
        noise = rng.normal(0, rng.choice([0.0, 1.0]), (4, 2))
        quads.append((obb_to_polygon(cx, cy, w, h, angle) + noise).round(1))
    boxes, convex = convex_quad_obbs(np.array(quads))
    assert convex.mean() > 0.9
    for quad, box, ok in zip(quads, boxes, convex, strict=True):
        if not ok:
            continue
        reference = polygon_to_obb(quad)
        # Both are minimum-area rectangles: equal areas (ties between edges may pick either).
        assert box[2] * box[3] == pytest.approx(reference[2] * reference[3], rel=1e-9)
        rectangle = shapely.Polygon(obb_to_polygon(*box))
        assert rectangle.buffer(1e-6).contains(shapely.Polygon(quad))
        assert box[2] >= box[3] and -90 <= box[4] < 90


def test_non_convex_and_other_polygons_use_polygon_to_obb() -> None:
    bow_tie = [[0, 0], [40, 20], [40, 0], [0, 20]]
    pentagon = [[100, 100], [160, 100], [170, 130], [130, 150], [95, 125]]
    objects = [
        Object(id=0, category="x", bbox=[0, 0, 40, 20], polygon=bow_tie),
        Object(id=1, category="x", bbox=[95, 100, 75, 50], polygon=pentagon),
    ]
    facts = _facts(*objects)
    for fact, obj in zip(facts, objects, strict=True):
        assert fact.obb == pytest.approx(polygon_to_obb(obj.polygon))
    assert facts[1].area_px == pytest.approx(shapely.Polygon(pentagon).area)


def test_facts_rows_are_json_ready_and_cached_by_identity() -> None:
    record = _record([_obb_object(0, "ship", 400, 300, 76, 18, 30)])
    row = cached_object_facts(record)[0].as_row()
    assert json.loads(json.dumps(row))["category"] == "ship" and "obb" not in row
    assert cached_object_facts(record) is cached_object_facts(record)
    assert cached_object_facts(record.model_copy(deep=True)) is not cached_object_facts(record)


def _write_image(path: Path, pixels: np.ndarray) -> None:
    """(bands, H, W) pixels as a GeoTIFF without georeferencing."""
    profile = {"driver": "GTiff", "width": pixels.shape[2], "height": pixels.shape[1]}
    profile |= {"count": pixels.shape[0], "dtype": pixels.dtype.name}
    with rasterio.open(path, "w", **profile) as target:
        target.write(pixels)


def _painted(tmp_path: Path, bands: int = 3, dtype: str = "uint8") -> Path:
    """A grey 1000 x 800 image with a red square at (100..160, 200..260) and a blue triangle.

    Black and white strips at the top and bottom give the 2 % and 98 % percentiles that a
    16-bit image is stretched between, so the 16-bit version reads back as the 8-bit one.
    """
    pixels = np.full((3, 800, 1000), 128, dtype=np.uint16)
    pixels[:, :40], pixels[:, -40:] = 0, 255
    pixels[:, 200:260, 100:160] = np.array([220, 20, 20])[:, None, None]
    rows, cols = np.mgrid[300:400, 500:600]
    triangle = cols - 500 < (rows - 300)  # below the diagonal of the square
    pixels[:, 300:400, 500:600][:, triangle] = np.array([30, 60, 210])[:, None]
    pixels[:, 300:400, 500:600][:, ~triangle] = 245
    if dtype == "uint16":
        pixels = pixels * 40 + 1000  # a 16-bit sensor range; the stretch must bring it back
    pixels = pixels[:bands].astype(dtype)
    (tmp_path / "images").mkdir(exist_ok=True)
    _write_image(tmp_path / "images" / "scene.tif", pixels)
    return tmp_path


def _painted_objects() -> list[Object]:
    """The red square, the blue triangle and a patch of grey background of ``_painted``."""
    square = Object(id=0, category="roof", bbox=[100, 200, 60, 60])
    triangle = Object(
        id=1,
        category="roof",
        bbox=[500, 300, 100, 100],
        polygon=[[500, 300], [500, 400], [600, 400]],
    )
    return [square, triangle, Object(id=2, category="road", bbox=[700, 600, 80, 80])]


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_colour_of_painted_objects(tmp_path: Path, dtype: str) -> None:
    root = _painted(tmp_path, dtype=dtype)
    square, triangle, background = _painted_objects()
    facts = object_facts(_record([square, triangle, background], georef=False), root)
    assert [f.colour for f in facts] == ["red", "blue", "grey"]
    assert all(f.colour is None for f in object_facts(_record([square]), None))


def test_colour_follows_the_bands_the_file_tags_red_green_and_blue(tmp_path: Path) -> None:
    """A 16-bit blue, green, red, near-infrared image tagged so: colours as in true colour."""
    root = _painted(tmp_path, dtype="uint16")
    path = root / "images" / "scene.tif"
    with rasterio.open(path) as source:
        red, green, blue = source.read()
    _write_image(path, np.stack([blue, green, red, np.full_like(red, 3000)]))
    with rasterio.open(path, "r+") as target:
        target.colorinterp = BGRN
    facts = object_facts(_record(_painted_objects(), georef=False), root)
    assert [f.colour for f in facts] == ["red", "blue", "grey"]


def test_one_band_images_are_named_in_grey_levels(tmp_path: Path) -> None:
    root = _painted(tmp_path, bands=1)
    square = Object(id=0, category="roof", bbox=[100, 200, 60, 60])  # band 1 is 220 there
    road = Object(id=1, category="road", bbox=[700, 600, 80, 80])
    assert [f.colour for f in object_facts(_record([square, road]), root)] == ["white", "grey"]


def test_mixed_or_tiny_objects_get_no_colour() -> None:
    red, blue, green = [220, 20, 20], [30, 60, 210], [70, 140, 60]
    assert dominant_colour(np.array([red] * 50 + [blue] * 50, dtype=np.uint8)) is None
    assert dominant_colour(np.array([red] * 55 + [blue] * 45, dtype=np.uint8)) is None
    assert dominant_colour(np.array([red] * 35 + [blue] * 35 + [green] * 30, np.uint8)) is None
    assert dominant_colour(np.array([red] * 45 + [blue] * 25 + [green] * 30, np.uint8)) == "red"
    assert dominant_colour(np.array([red] * 5, dtype=np.uint8)) is None


def test_a_missing_image_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"scene\.tif"):
        object_facts(_record([Object(id=0, category="x", bbox=[1, 1, 5, 5])]), tmp_path)


def test_clusters_equal_scipy_single_linkage() -> None:
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    rng = np.random.default_rng(3)
    for _ in range(50):
        centres = rng.uniform(0, 500, (int(rng.integers(2, 40)), 2))
        ours = layout.cluster_labels(centres, 60.0)
        theirs = hierarchy.fcluster(hierarchy.linkage(centres, "single"), 60.0, "distance")
        pairs_ours = ours[:, None] == ours[None, :]
        assert (pairs_ours == (theirs[:, None] == theirs[None, :])).all()


def test_arrangement_finds_a_row_a_cluster_and_the_density() -> None:
    tanks = [_obb_object(i, "storage-tank", 600 + 40 * i, 650, 30, 30, 0) for i in range(4)]
    huddle = [
        _obb_object(10 + i, "storage-tank", x, y, 30, 30, 0)
        for i, (x, y) in enumerate([(100, 100), (130, 110), (110, 135)])
    ]
    loner = _obb_object(20, "storage-tank", 400, 400, 30, 30, 0)
    record = _record([*tanks, *huddle, loner])
    (tank_class,) = layout.class_arrangements(object_facts(record), record.image)
    assert tank_class.clusters == ((0, 1, 2, 3), (10, 11, 12))
    (row,) = tank_class.rows  # the huddle is a cluster but not a line
    assert row.ids == (0, 1, 2, 3) and row.orientation == "east-west"
    hectares = 1000 * 800 * 0.25 / 10_000
    assert tank_class.density_per_hectare == pytest.approx(8 / hectares)
    assert tank_class.position is None  # no cell holds more than half of them


def test_relations_use_centres_with_a_margin() -> None:
    a = Object(id=0, category="car", bbox=[100, 100, 20, 20])
    b = Object(id=1, category="car", bbox=[200, 105, 20, 20])  # right, and a near-tie in y
    c = Object(id=2, category="car", bbox=[108, 300, 20, 20])  # near-tie in x, below
    fa, fb, fc = _facts(a, b, c)
    ab = layout.relation(fa, fb, gsd=0.5)
    assert (ab.horizontal, ab.vertical) == ("left", None)
    assert ab.distance_m == pytest.approx(math.hypot(100, 5) * 0.5)
    ac = layout.relation(fa, fc)
    assert (ac.horizontal, ac.vertical, ac.distance_m) == (None, "above", None)
    assert len(layout.pair_relations([fa, fb, fc], max_objects=2)) == 1


def test_nearest_is_claimed_only_when_clearly_nearest() -> None:
    target = Object(id=0, category="car", bbox=[100, 100, 10, 10])
    near = Object(id=1, category="car", bbox=[150, 100, 10, 10])
    far = Object(id=2, category="car", bbox=[100, 200, 10, 10])
    tie = Object(id=3, category="car", bbox=[100, 152, 10, 10])
    facts = _facts(target, near, far)
    found = layout.nearest(facts[0], facts)
    assert found is not None and found[0].id == 1 and found[1] == pytest.approx(50)
    facts = _facts(target, near, far, tie)
    assert layout.nearest(facts[0], facts) is None


def test_between_needs_the_centre_near_the_segment() -> None:
    a = Object(id=0, category="car", bbox=[100, 100, 10, 10])
    b = Object(id=1, category="car", bbox=[300, 100, 10, 10])
    middle = Object(id=2, category="car", bbox=[200, 110, 10, 10])
    off = Object(id=3, category="car", bbox=[200, 200, 10, 10])
    beyond = Object(id=4, category="car", bbox=[400, 100, 10, 10])
    facts = _facts(a, b, middle, off, beyond)
    assert [f.id for f in layout.objects_between(facts[0], facts[1], facts)] == [2]
    assert [f.id for f in layout.objects_not_between(facts[0], facts[1], facts)] == [3, 4]


def test_facts_of_many_records_equal_each_record_alone() -> None:
    """The instruct stage computes facts for a batch of records at once: nothing may change."""
    bow_tie = Object(
        id=5, category="x", bbox=[0, 0, 40, 20], polygon=[[0, 0], [40, 20], [40, 0], [0, 20]]
    )
    pentagon = [[100, 100], [160, 100], [170, 130], [130, 150], [95, 125]]
    records = [
        _record([_obb_object(0, "ship", 400, 300, 76, 18, 30), bow_tie]),
        _record([], gsd=None),
        _record(
            [
                Object(id=0, category="harbor", bbox=[600, 50, 200, 100]),
                Object(id=1, category="x", bbox=[95, 100, 75, 50], polygon=pentagon),
                _obb_object(2, "ship", 10, 300, 76, 18, 0, attributes={"truncated": True}),
            ],
            gsd=None,
            georef=False,
        ),
        _record(
            [_obb_object(i, "car", 100 + 25 * i, 200 + 11 * i, 20, 8, 17 * i) for i in range(30)]
        ),
    ]
    assert attributes.many_object_facts(records) == [object_facts(r) for r in records]
    for record in records:  # and each equals the facts of a record of its own
        assert object_facts(record) == object_facts(record.model_copy(deep=True))


def test_vectorised_orientations_match_orientation_of() -> None:
    rng = np.random.default_rng(11)
    obbs = np.column_stack(
        [rng.uniform(0, 9, (500, 2)), rng.uniform(0, 50, (500, 2)), rng.uniform(-200, 200, 500)]
    )
    obbs[::7, 4] = rng.choice([-67.5, -22.5, 22.5, 67.5, 0.0, 90.0, 45.0], len(obbs[::7]))
    north_up = rng.random(500) < 0.5
    vectorised = attributes._orientations(obbs, np.ones(500, bool), north_up.tolist())
    one_by_one = [
        attributes.orientation_of(tuple(obb), bool(up))
        for obb, up in zip(obbs.tolist(), north_up, strict=True)
    ]
    assert vectorised == one_by_one


def test_cluster_paths_agree() -> None:
    """Few centres take a plain-Python path, many take numpy: the clusters are the same."""
    rng = np.random.default_rng(5)
    for _ in range(100):
        centres = rng.uniform(0, 300, (int(rng.integers(1, layout.SMALL_CLUSTER + 1)), 2))
        small = layout._cluster_labels([tuple(c) for c in centres.tolist()], 40.0)
        assert small == layout._cluster_labels_numpy(centres, 40.0).tolist()
