"""Box text styles: exact renders, round trips within the quantisation, tolerant parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsgpt4v.boxfmt import STYLES, TextBox, parse_boxes, quantisation, render_box
from rsgpt4v.errors import BoxFormatError

NORMALISED = ("llava", "qwen2vl", "geochat", "minigptv2", "internvl")
EPS = 1e-6


def test_styles_are_the_seven_names() -> None:
    assert set(STYLES) == {*NORMALISED, "qwen25vl", "pixel"}
    assert len(STYLES) == 7


def _span(draw: st.DrawFn, size: int) -> tuple[float, float]:
    kind = draw(st.sampled_from(("any", "tiny", "full", "edge")))
    if kind == "full":
        return 0.0, float(size)
    a = draw(st.floats(0, size))
    if kind == "tiny":
        return a, min(a + draw(st.floats(0, 1)), float(size))
    if kind == "edge":
        return a, float(size)
    b = draw(st.floats(0, size))
    return min(a, b), max(a, b)


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[int, int, tuple[float, float, float, float]]:
    width = draw(st.integers(1, 20000))
    height = draw(st.integers(1, 20000))
    x1, x2 = _span(draw, width)
    y1, y2 = _span(draw, height)
    return width, height, (x1, y1, x2, y2)


def _assert_round_trip(style: str, case: tuple, square_pad: bool = False) -> None:
    width, height, box = case
    text = render_box(style, box, width, height, square_pad=square_pad)
    parsed = parse_boxes(style, text, width, height, square_pad=square_pad)
    assert len(parsed) == 1, text
    qx, qy = quantisation(style, width, height, square_pad=square_pad)
    got = (parsed[0].x1, parsed[0].y1, parsed[0].x2, parsed[0].y2)
    for value, original, tolerance in zip(got, box, (qx, qy, qx, qy), strict=True):
        assert abs(value - original) <= tolerance + EPS, (text, got, box)


@pytest.mark.parametrize("style", STYLES)
@given(case=image_and_box())
def test_round_trip_within_quantisation(style: str, case: tuple) -> None:
    _assert_round_trip(style, case)


@pytest.mark.parametrize("style", NORMALISED)
@given(case=image_and_box())
def test_round_trip_square_pad(style: str, case: tuple) -> None:
    _assert_round_trip(style, case, square_pad=True)


@given(case=image_and_box(), angle=st.floats(-360, 360))
def test_geochat_angle_round_trip(case: tuple, angle: float) -> None:
    width, height, box = case
    text = render_box("geochat", box, width, height, angle=angle)
    (parsed,) = parse_boxes("geochat", text, width, height)
    assert parsed.angle is not None
    assert abs(parsed.angle - angle) <= 0.5


@pytest.mark.parametrize(
    ("style", "box", "size", "expected"),
    [
        ("llava", (100, 50, 300, 250), (1000, 500), "[0.10, 0.10, 0.30, 0.50]"),
        ("llava", (0, 0, 1, 1), (3, 3), "[0.00, 0.00, 0.33, 0.33]"),
        (
            "qwen2vl",
            (192, 108, 960, 541),
            (1920, 1080),
            "<|box_start|>(100,100),(500,501)<|box_end|>",
        ),
        ("qwen25vl", (10.4, 20.6, 300.2, 480), (640, 480), '{"bbox_2d": [10, 21, 300, 480]}'),
        ("geochat", (50, 40, 251, 399), (500, 400), "{<10><10><50><100>|<0>}"),
        ("minigptv2", (3, 2, 150, 198), (300, 200), "{<1><1><50><99>}"),
        ("internvl", (10, 20, 1998, 1000), (2000, 1000), "<box>[[5, 20, 999, 1000]]</box>"),
        ("pixel", (-5, 10.2, 50.7, 120), (100, 100), "[0, 10, 51, 100]"),
    ],
)
def test_render_exact(style: str, box: tuple, size: tuple[int, int], expected: str) -> None:
    assert render_box(style, box, *size) == expected


def test_render_geochat_angle() -> None:
    text = render_box("geochat", (50, 40, 251, 399), 500, 400, angle=30.4)
    assert text == "{<10><10><50><100>|<30>}"


def test_llava_square_pad_centres_the_image() -> None:
    # A 1000x500 image sits 250 px down in the 1000x1000 padded square.
    text = render_box("llava", (100, 50, 300, 250), 1000, 500, square_pad=True)
    assert text == "[0.10, 0.30, 0.30, 0.50]"
    (box,) = parse_boxes("llava", text, 1000, 500, square_pad=True)
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((100, 50, 300, 250))


def test_square_pad_on_wide_side_shifts_x() -> None:
    text = render_box("qwen2vl", (0, 0, 500, 1000), 500, 1000, square_pad=True)
    assert text == "<|box_start|>(250,0),(750,999)<|box_end|>"  # the grid is [0, 1000)


def test_square_pad_uses_llavas_integer_offset() -> None:
    """expand2square pastes a 1001x500 image at y = (1001 - 500) // 2 = 250, not 250.5."""
    text = render_box("pixel", (0, 0, 10, 10), 1001, 500, frame=None)
    assert text == "[0, 0, 10, 10]"
    (box,) = parse_boxes("llava", "[0.00, 0.25, 1.00, 0.75]", 1001, 500, square_pad=True)
    assert box.y1 == pytest.approx(0.25 * 1001 - 250)


def test_box_decimals_override_the_style_precision() -> None:
    assert render_box("llava", (100, 50, 300, 250), 1000, 500, decimals=3) == (
        "[0.100, 0.100, 0.300, 0.500]"
    )


def test_parse_llava_several_boxes_in_prose() -> None:
    text = "Two ships:  [ 0.1 ,0.2, 0.3,0.4 ] and\n[0.500,  0.600, 0.700, 0.800]. Done."
    boxes = parse_boxes("llava", text, 1000, 500)
    assert [(b.x1, b.y1, b.x2, b.y2) for b in boxes] == [
        pytest.approx((100, 100, 300, 200)),
        pytest.approx((500, 300, 700, 400)),
    ]
    assert all(b.angle is None for b in boxes)


def test_parse_qwen2vl_tolerates_spaces() -> None:
    text = (
        "a <|box_start|>( 100 , 200 ), (300,400)<|box_end|>"
        " b <|box_start|>(0,0),(1000,1000)<|box_end|>"
    )
    boxes = parse_boxes("qwen2vl", text, 2000, 1000)
    assert boxes == [TextBox(200.0, 200.0, 600.0, 400.0), TextBox(0.0, 0.0, 2000.0, 1000.0)]


def test_parse_qwen25vl_json_list() -> None:
    text = '```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "car"}, {"bbox_2d":[5,6,7,8]}]\n```'
    assert parse_boxes("qwen25vl", text, 640, 480) == [TextBox(1, 2, 3, 4), TextBox(5, 6, 7, 8)]


def test_parse_geochat_angle_with_and_without_brackets() -> None:
    text = "plane {<10><20><30><40>|<45>} and {< 50 ><60> <70><80>| -30 }."
    boxes = parse_boxes("geochat", text, 100, 100)
    assert boxes == [TextBox(10, 20, 30, 40, 45.0), TextBox(50, 60, 70, 80, -30.0)]


def test_parse_minigptv2_ignores_geochat_boxes() -> None:
    text = "{<10><20><30><40>} then {<1><2><3><4>|<5>}"
    assert parse_boxes("minigptv2", text, 100, 100) == [TextBox(10, 20, 30, 40)]


def test_parse_internvl_several_boxes_per_tag() -> None:
    text = "cars<box>[[0, 0, 100, 100], [500,500, 1000 ,1000]]</box> and <box>[[1, 2, 3, 4]]</box>"
    boxes = parse_boxes("internvl", text, 1000, 2000)
    assert boxes == [
        TextBox(0, 0, 100, 200),
        TextBox(500, 1000, 1000, 2000),
        TextBox(1, 4, 3, 8),
    ]


def test_parse_internvl_ignores_lists_outside_tags() -> None:
    assert parse_boxes("internvl", "[1, 2, 3, 4]", 1000, 1000) == []


def test_parse_swapped_corners_are_reordered() -> None:
    assert parse_boxes("pixel", "[30, 40, 10, 20]", 100, 100) == [TextBox(10, 20, 30, 40)]


def test_parse_rejects_partial_boxes() -> None:
    assert parse_boxes("pixel", "[1, 2, 3] and [1, 2, 3, 4, 5]", 100, 100) == []


@pytest.mark.parametrize("style", STYLES)
def test_parse_without_box_is_empty(style: str) -> None:
    assert parse_boxes(style, "There is no box in this answer.", 640, 480) == []


def test_unknown_style_lists_known_ones() -> None:
    with pytest.raises(BoxFormatError, match=r"llava.*pixel"):
        render_box("yolo", (0, 0, 1, 1), 10, 10)
    with pytest.raises(BoxFormatError, match="unknown box style"):
        parse_boxes("yolo", "[0, 0, 1, 1]", 10, 10)
    with pytest.raises(BoxFormatError, match="unknown box style"):
        quantisation("yolo", 10, 10)


@pytest.mark.parametrize(
    "box",
    [
        (5, 0, 4, 1),
        (0, 5, 1, 4),
        (float("nan"), 0, 1, 1),
        (0, 0, float("inf"), 1),
        (0, 0, 1),
        ("a", 0, 1, 1),
    ],
)
def test_render_rejects_bad_boxes(box: tuple) -> None:
    with pytest.raises(BoxFormatError):
        render_box("llava", box, 10, 10)


def test_render_rejects_what_the_style_cannot_write() -> None:
    with pytest.raises(BoxFormatError, match="angle"):
        render_box("llava", (0, 0, 1, 1), 10, 10, angle=30)
    with pytest.raises(BoxFormatError, match="angle"):
        render_box("geochat", (0, 0, 1, 1), 10, 10, angle=float("nan"))
    with pytest.raises(BoxFormatError, match="square_pad"):
        render_box("pixel", (0, 0, 1, 1), 10, 10, square_pad=True)
    with pytest.raises(BoxFormatError, match="image size"):
        render_box("pixel", (0, 0, 1, 1), 0, 10)


def test_quantisation_values() -> None:
    assert quantisation("pixel", 640, 480) == (0.5, 0.5)
    assert quantisation("geochat", 1000, 500) == (5.0, 2.5)
    assert quantisation("llava", 1000, 500) == pytest.approx((5.0, 2.5))
    assert quantisation("llava", 1000, 500, square_pad=True) == pytest.approx((5.0, 5.0))
    assert quantisation("llava", 1000, 500, decimals=3) == pytest.approx((0.5, 0.25))
    assert quantisation("qwen2vl", 1000, 500) == pytest.approx((1.0, 0.5))  # edge: 1000 → 999
