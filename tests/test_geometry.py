"""Hand-computed cases and properties for rsgpt4v.geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rsgpt4v.errors import InputError
from rsgpt4v.geometry import (
    MAX_COORDINATE,
    GeometryError,
    check_coordinates,
    clip_bbox,
    clip_polygon_to_window,
    intersection_over_object,
    obb_to_polygon,
    polygon_bbox,
    polygon_to_clipped_bbox,
    polygon_to_obb,
    polygons_to_clipped_bboxes,
    size_mismatch,
)

# Real object lines of DOTA_devkit example/labelTxt/P0706.txt (image 1111 x 1182).
P0706_SHIP = [[1054, 1028], [1063, 1011], [1111, 1040], [1112, 1062]]
P0706_QUADS = [
    P0706_SHIP,
    [[807, 331], [800, 324], [817, 309], [823, 316]],
    [[879, 366], [888, 373], [870, 393], [861, 386]],
]


def shoelace(points: np.ndarray | list) -> float:
    """Signed area in image coordinates; positive means clockwise on screen (y down)."""
    xy = np.asarray(points, dtype=float)
    x, y = xy[:, 0], xy[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) / 2.0)


def wrap(angle: float, period: float) -> float:
    return (angle + period / 2.0) % period - period / 2.0


def same_shape(ring: list[list[float]] | None, expected: list[list[float]]) -> bool:
    return ring is not None and shapely.Polygon(ring).equals(shapely.Polygon(expected))


coord = st.floats(-50, 150, allow_nan=False, allow_infinity=False)
polygon_strategy = st.lists(st.tuples(coord, coord), min_size=3, max_size=7)


# --- boxes -------------------------------------------------------------------------------------


def test_polygon_bbox_is_unclipped_bounds():
    assert polygon_bbox(P0706_SHIP) == [1054.0, 1011.0, 58.0, 51.0]


def test_dota_ship_past_the_border_is_clipped_to_the_image():
    assert polygon_to_clipped_bbox(P0706_SHIP, 1111, 1182) == [1054.0, 1011.0, 57.0, 51.0]


def test_polygon_outside_the_image_has_no_box():
    assert polygon_to_clipped_bbox([[200, 10], [220, 10], [220, 30]], 100, 100) is None
    assert polygon_to_clipped_bbox([[-30, -30], [-10, -30], [-10, -5]], 100, 100) is None


def test_negative_coordinates_are_clipped_at_zero():
    assert polygon_to_clipped_bbox([[-5, -3], [10, -3], [10, 8], [-5, 8]], 100, 100) == [
        0.0,
        0.0,
        10.0,
        8.0,
    ]


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        ([10, 20, 30, 40], [10.0, 20.0, 30.0, 40.0]),
        ([-10, -5, 30, 40], [0.0, 0.0, 20.0, 35.0]),
        ([90, 70, 30, 40], [90.0, 70.0, 10.0, 10.0]),
        ([-10, -10, 200, 200], [0.0, 0.0, 100.0, 80.0]),
        ([100, 10, 5, 5], None),  # touches the right edge only: zero width
        ([-20, 10, 20, 5], None),  # ends exactly at x = 0
        ([120, 10, 5, 5], None),
        ([10, 10, 0, 5], None),
    ],
)
def test_clip_bbox(bbox, expected):
    assert clip_bbox(bbox, 100, 80) == expected


def test_vectorised_boxes_match_the_scalar_function_including_nan_rows():
    polygons = [P0706_SHIP, [[2000, 5], [2010, 5], [2010, 9]], [[-4, -4], [3, -4], [3, 2], [0, 5]]]
    boxes = polygons_to_clipped_bboxes(polygons, 1111, 1182)
    assert boxes.shape == (3, 4)
    np.testing.assert_array_equal(boxes[0], [1054, 1011, 57, 51])
    assert np.isnan(boxes[1]).all()
    np.testing.assert_array_equal(boxes[2], [0, 0, 3, 5])


def test_vectorised_boxes_accept_an_nk2_array_and_empty_input():
    quads = np.asarray(P0706_QUADS, dtype=float)
    expected = [polygon_to_clipped_bbox(q, 1111, 1182) for q in P0706_QUADS]
    np.testing.assert_array_equal(polygons_to_clipped_bboxes(quads, 1111, 1182), expected)
    assert polygons_to_clipped_bboxes([], 10, 10).shape == (0, 4)


@settings(max_examples=200, deadline=None)
@given(st.lists(polygon_strategy, min_size=1, max_size=8))
def test_vectorised_boxes_equal_scalar_row_by_row(polygons):
    boxes = polygons_to_clipped_bboxes(polygons, 100, 80)
    for polygon, row in zip(polygons, boxes, strict=True):
        expected = polygon_to_clipped_bbox(polygon, 100, 80)
        if expected is None:
            assert np.isnan(row).all()
        else:
            np.testing.assert_allclose(row, expected, rtol=0, atol=1e-9)


def test_bad_polygons_are_input_errors():
    with pytest.raises(InputError):
        polygon_bbox([[0, 0], [1, 1]])
    with pytest.raises(InputError):
        polygons_to_clipped_bboxes([[[0, 0], [1, 0], [1, float("nan")]]], 10, 10)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_non_finite_box_is_a_geometry_error_not_a_box(bad):
    """``xmax=inf`` used to clip to the image edge and pass as a full-width box."""
    with pytest.raises(GeometryError, match=f"box coordinates must be finite numbers, not {bad}"):
        clip_bbox([10, 12, bad, 28], 64, 48)
    with pytest.raises(GeometryError, match="must be finite"):
        polygons_to_clipped_bboxes(np.array([[[0, 0], [bad, 0], [1, 1]]]), 10, 10)
    with pytest.raises(GeometryError, match="must be finite"):
        polygon_to_clipped_bbox([[0, 0], [bad, 0], [1, 1]], 10, 10)
    assert issubclass(GeometryError, InputError)  # callers that catch InputError keep working


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([[0, 0], [math.nan, 1]], "must be finite numbers, not nan"),
        ([1, math.inf], "must be finite numbers, not inf"),
        ([0, 1e300], r"must lie within ±1,000,000,000, not 1e\+300"),
        ([0, -2 * MAX_COORDINATE], "not -2000000000.0"),
        ([[0, 0], ["x", 1]], "must be numbers"),
    ],
)
def test_check_coordinates_refuses_what_geos_cannot_use(values, message):
    with pytest.raises(GeometryError, match=message):
        check_coordinates(values)
    np.testing.assert_array_equal(check_coordinates([[0, MAX_COORDINATE]]), [[0, 1e9]])


def test_size_mismatch_says_both_sizes():
    assert size_mismatch("XML", (64, 48.0), 64, 48) is None
    assert size_mismatch("XML", (128, 96), 64, 48) == "the XML gives 128x96 but the image is 64x48"
    assert (
        size_mismatch("JSON", (True, 48), 1, 48) == "the JSON gives Truex48 but the image is 1x48"
    )


# --- clipping to a window ----------------------------------------------------------------------


def test_square_half_inside_a_window_gives_the_inside_rectangle():
    square = [[80, 10], [120, 10], [120, 50], [80, 50]]
    ring = clip_polygon_to_window(square, [0, 0, 100, 100])
    assert same_shape(ring, [[80, 10], [100, 10], [100, 50], [80, 50]])
    assert len(ring) == 4
    assert shoelace(ring) == pytest.approx(800.0)  # positive: DOTA's clockwise-on-screen order


def test_clip_keeps_the_window_coordinates_unshifted():
    ring = clip_polygon_to_window([[90, 90], [130, 90], [130, 130], [90, 130]], [100, 100, 50, 50])
    assert same_shape(ring, [[100, 100], [130, 100], [130, 130], [100, 130]])


def test_triangle_clip():
    # Right triangle (0,0)-(10,0)-(0,10) cut by the window x <= 5: a trapezoid.
    ring = clip_polygon_to_window([[0, 0], [10, 0], [0, 10]], [0, 0, 5, 20])
    assert same_shape(ring, [[0, 0], [5, 0], [5, 5], [0, 10]])
    assert shoelace(ring) == pytest.approx(37.5)


def test_disjoint_or_touching_clip_is_none():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    assert clip_polygon_to_window(square, [20, 20, 5, 5]) is None
    assert clip_polygon_to_window(square, [10, 0, 5, 5]) is None  # shares an edge only


def test_clip_keeps_the_largest_piece():
    # A U shape whose two arms enter the window separately; the right arm is wider.
    u_shape = [[0, 0], [2, 0], [2, 8], [4, 8], [4, 0], [10, 0], [10, 10], [0, 10]]
    ring = clip_polygon_to_window(u_shape, [0, 0, 10, 5])
    assert same_shape(ring, [[4, 0], [10, 0], [10, 5], [4, 5]])


def test_clip_repairs_a_crossed_quad():
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10]]  # corners in the wrong order
    ring = clip_polygon_to_window(bowtie, [0, 0, 10, 10])
    assert ring is not None
    assert abs(shoelace(ring)) == pytest.approx(25.0)


# --- intersection over object ------------------------------------------------------------------

WINDOW = [0, 0, 100, 100]


@pytest.mark.parametrize(
    ("polygon", "expected"),
    [
        ([[10, 10], [20, 10], [20, 20], [10, 20]], 1.0),
        ([[90, 10], [110, 10], [110, 20], [90, 20]], 0.5),
        ([[200, 10], [210, 10], [210, 20], [200, 20]], 0.0),
        ([[100, 10], [110, 10], [110, 20], [100, 20]], 0.0),  # touches the edge
        ([[10, 10], [20, 20], [30, 30]], 0.0),  # zero area, inside
        ([[90, 10], [110, 10], [130, 10]], 0.0),  # zero area, straddling
    ],
)
def test_intersection_over_object_cases(polygon, expected):
    assert intersection_over_object([polygon], WINDOW) == pytest.approx([expected])


def test_intersection_over_object_triangle_is_exact():
    # Triangle (90,0)-(110,0)-(90,20): area 200, the part with x <= 100 has area 150.
    iof = intersection_over_object([[[90, 0], [110, 0], [90, 20]]], WINDOW)
    assert iof == pytest.approx([0.75])


@settings(max_examples=100, deadline=None)
@given(st.lists(polygon_strategy, min_size=1, max_size=12))
def test_intersection_over_object_vectorised_equals_one_by_one(polygons):
    window = [20, 10, 60, 50]
    together = intersection_over_object(polygons, window)
    one_by_one = [intersection_over_object([p], window)[0] for p in polygons]
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-12)
    assert ((together >= 0) & (together <= 1 + 1e-12)).all()


def test_intersection_over_object_many_polygons_and_shapely_input():
    rng = np.random.default_rng(0)
    corners = rng.uniform(-100, 1100, size=(2000, 1, 2)) + rng.uniform(0, 60, size=(2000, 4, 2))
    window = [200, 300, 512, 512]
    from_array = intersection_over_object(corners, window)
    shapes = shapely.make_valid(shapely.polygons(corners))
    expected = [
        shapely.area(shapely.intersection(s, shapely.box(200, 300, 712, 812))) / s.area
        if s.area > 0
        else 0.0
        for s in shapes
    ]
    np.testing.assert_allclose(from_array, expected, atol=1e-12)
    from_shapes = intersection_over_object(list(shapely.polygons(corners)), window)
    np.testing.assert_array_equal(from_shapes, from_array)
    assert intersection_over_object([], window).shape == (0,)


# --- oriented boxes ----------------------------------------------------------------------------


def test_obb_to_polygon_axis_aligned_corners():
    corners = obb_to_polygon(10, 20, 8, 4, 0)
    np.testing.assert_allclose(corners, [[6, 18], [14, 18], [14, 22], [6, 22]])


def test_obb_angle_90_swaps_extents():
    corners = obb_to_polygon(10, 20, 8, 4, 90)
    np.testing.assert_allclose(corners, [[12, 16], [12, 24], [8, 24], [8, 16]], atol=1e-12)
    np.testing.assert_allclose(np.ptp(corners, axis=0), [4, 8], atol=1e-12)


@given(
    st.floats(-1000, 1000),
    st.floats(-1000, 1000),
    st.floats(0.5, 500),
    st.floats(0.5, 500),
    st.floats(-720, 720),
)
def test_obb_polygon_is_clockwise_on_screen(cx, cy, w, h, angle):
    assert shoelace(obb_to_polygon(cx, cy, w, h, angle)) == pytest.approx(w * h, rel=1e-9)


def canonical(w: float, h: float, angle: float) -> tuple[float, float, float, float]:
    """Expected le90 form of an OBB, plus the period its angle is defined modulo."""
    if h > w:
        w, h, angle = h, w, angle + 90.0
    period = 90.0 if w == h else 180.0
    return w, h, wrap(angle, period), period


@settings(max_examples=300)
@given(
    st.floats(-5000, 5000),
    st.floats(-5000, 5000),
    st.floats(0.5, 1000),
    st.floats(0.5, 1000),
    st.floats(-720, 720),
    st.booleans(),
)
@example(cx=0.0, cy=4152.0, w=1.0, h=1.0, angle=315.375, square=True)  # GEOS envelope was 1e-9 off
def test_obb_round_trip_gives_the_le90_form(cx, cy, w, h, angle, square):
    if square:
        h = w
    assume(w == h or abs(w - h) > 1e-6)
    got = polygon_to_obb(obb_to_polygon(cx, cy, w, h, angle))
    exp_w, exp_h, exp_angle, period = canonical(w, h, angle)
    assert got[0] == pytest.approx(cx, abs=1e-6)
    assert got[1] == pytest.approx(cy, abs=1e-6)
    assert got[2] == pytest.approx(exp_w, abs=1e-6)
    assert got[3] == pytest.approx(exp_h, abs=1e-6)
    assert abs(wrap(got[4] - exp_angle, period)) < 1e-6  # 89.9999999 and -90 are the same box
    assert got[2] >= got[3]
    assert -period / 2 <= got[4] < period / 2


def test_polygon_to_obb_hand_cases():
    assert polygon_to_obb([[6, 18], [14, 18], [14, 22], [6, 22]]) == pytest.approx(
        (10, 20, 8, 4, 0)
    )
    cx, cy, w, h, angle = polygon_to_obb([[8, 16], [12, 16], [12, 24], [8, 24]])
    assert (cx, cy, w, h) == pytest.approx((10, 20, 8, 4))
    assert angle == pytest.approx(-90)
    assert polygon_to_obb([[0, 0], [2, 0], [2, 2], [0, 2]]) == pytest.approx((1, 1, 2, 2, 0))
    # A square turned by 45 degrees reports -45, the low end of [-45, 45).
    diamond = polygon_to_obb([[1, 0], [2, 1], [1, 2], [0, 1]])
    assert diamond == pytest.approx((1, 1, math.sqrt(2), math.sqrt(2), -45))


def test_polygon_to_obb_of_degenerate_polygons():
    assert polygon_to_obb([[0, 0], [3, 4], [6, 8]]) == pytest.approx(
        (3, 4, 10, 0, math.degrees(math.atan2(4, 3)))
    )
    assert polygon_to_obb([[5, 5], [5, 5], [5, 5]]) == pytest.approx((5, 5, 0, 0, 0))


@pytest.mark.parametrize("quad", P0706_QUADS)
def test_polygon_to_obb_on_dota_quads_is_le90(quad):
    cx, cy, w, h, angle = polygon_to_obb(quad)
    assert w >= h > 0
    assert -90 <= angle < 90
    assert shapely.Polygon(obb_to_polygon(cx, cy, w, h, angle)).contains(
        shapely.Polygon(quad).buffer(-1e-6)
    )


@given(
    st.floats(0, 1000),
    st.floats(0, 1000),
    st.floats(2, 300),
    st.floats(2, 300),
    st.floats(-180, 180),
    st.lists(st.floats(-1, 1), min_size=8, max_size=8),
)
def test_polygon_to_obb_on_noisy_quads_is_le90(cx, cy, w, h, angle, noise):
    quad = obb_to_polygon(cx, cy, w, h, angle) + np.reshape(noise, (4, 2))
    _, _, got_w, got_h, got_angle = polygon_to_obb(quad)
    assert got_w >= got_h
    assert -90 <= got_angle < 90


def test_box_iou_is_iou_matrix_for_one_pair() -> None:
    """The one IoU (pycocotools' definition); box_iou writes it out for a single pair."""
    import random

    from rsgpt4v.geometry import box_iou, iou_matrix

    rng = random.Random(0)
    boxes = [[rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(0, 60), rng.uniform(0, 60)]]
    boxes += [
        [rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(0, 60), rng.uniform(0, 60)]
        for _ in range(199)
    ]
    matrix = iou_matrix(boxes[:100], boxes[100:])
    for i, a in enumerate(boxes[:100]):
        for j, b in enumerate(boxes[100:]):
            assert abs(box_iou(a, b) - matrix[i, j]) < 1e-12
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
