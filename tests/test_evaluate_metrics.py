"""Metrics against known values: perfect answers score 1, small cases computed by hand."""

from __future__ import annotations

import pytest

from rsgpt4v.evaluate.metrics_classification import classification_scores, predicted_class
from rsgpt4v.evaluate.metrics_count import count_scores
from rsgpt4v.evaluate.metrics_grounding import answer_scores, grounding_scores, iou_matrix
from rsgpt4v.evaluate.metrics_vqa import VqaCase, VqaOptions, answer_matches, vqa_scores
from rsgpt4v.evaluate.normalize import (
    area_bin,
    count_bin,
    normalize_answer,
    parse_area,
    parse_number,
    parse_yes_no,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "yes"),
        ("  The   Answer, is: RURAL! ", "answer is rural"),
        ("twenty-one cars", "21 cars"),
        ("one hundred and five", "105"),
        ("three thousand two hundred", "3200"),
        ("1,234 square meters", "1234m2"),
        ("1234 m^2", "1234m2"),
        ("1234m²", "1234m2"),
        ("12.5 sq m", "12.5m2"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "number"),
    [("There are 12 cars.", 12), ("twelve", 12), ("No cars.", 0), ("I cannot tell", None)],
)
def test_parse_number_reads_digits_and_words(text: str, number: float | None) -> None:
    assert parse_number(text) == number


def test_area_units_convert_to_square_metres() -> None:
    assert parse_area("1234m2") == 1234
    assert parse_area("2 km2") == 2_000_000
    assert parse_area("3 hectares") == 30_000
    assert parse_yes_no("Yes, there is a road.") == "yes"
    assert parse_yes_no("There is a road.") is None


@pytest.mark.parametrize(
    ("value", "label"),
    [(0, "0"), (1, "1-10"), (10, "1-10"), (11, "11-100"), (100, "11-100"), (101, "101-1000"),
     (1000, "101-1000"), (1001, ">1000")],
)  # fmt: skip
def test_rsvqa_bins_have_the_papers_edges(value: int, label: str) -> None:
    assert count_bin(value) == label
    assert area_bin(value) == label + "m2"


def test_vqa_answers_match_the_way_the_reference_is_written() -> None:
    exact = VqaOptions()
    assert answer_matches("Yes, there is one.", "yes", "presence", exact)
    assert not answer_matches("No.", "yes", "presence", exact)
    assert answer_matches("Yes.", "Yes, there are 2 planes.", "presence", exact)
    assert answer_matches("There are twelve.", "12", "count", exact)
    assert not answer_matches("There are 11.", "12", "count", exact)
    assert answer_matches("It is a rural area.", "rural", "rural_urban", exact)
    assert not answer_matches("urban, not rural", "rural", "rural_urban", exact)
    assert answer_matches("1,234 square meters", "1234m2", "area", exact)
    assert answer_matches("The Harbor", "harbor", None, exact)


def test_rsvqa_bins_decide_when_asked() -> None:
    assert not answer_matches("15", "40", "count", VqaOptions())
    assert answer_matches("15", "40", "count", VqaOptions(bin_counts=True))
    assert not answer_matches("9", "40", "count", VqaOptions(bin_counts=True))
    assert answer_matches("500 m2", "900m2", "area", VqaOptions(bin_areas=True))
    assert not answer_matches("0m2", "900m2", "area", VqaOptions(bin_areas=True))


def test_vqa_accuracy_overall_and_per_type() -> None:
    cases = [
        VqaCase("yes", ["yes"], "presence"),
        VqaCase("no", ["yes"], "presence"),
        VqaCase("3", ["3"], "count"),
        VqaCase("rural", ["rural"], "rural_urban"),
    ]
    scores = vqa_scores(cases)
    assert scores["accuracy"] == 3 / 4
    assert scores["per_type"]["presence"] == {"accuracy": 0.5, "n": 2}
    assert scores["average_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    perfect = vqa_scores(VqaCase(c.references[0], c.references, c.question_type) for c in cases)
    assert perfect["accuracy"] == 1.0


def test_count_exact_match_and_mae_with_unparsed_as_zero() -> None:
    scores = count_scores([("There are 3 ships.", 3), ("five", 4), ("I cannot tell", 2)])
    assert scores["exact_match"] == 1 / 3
    assert scores["mae"] == pytest.approx((0 + 1 + 2) / 3)
    assert scores["unparsed"] == 1
    assert count_scores([("3", 3), ("ten", 10)])["exact_match"] == 1.0


def test_predicted_class_from_text_or_option_letter() -> None:
    classes = ["forest", "dense residential", "residential"]
    assert predicted_class("This is a dense residential area.", classes) == "dense residential"
    assert predicted_class("Forest.", classes) == "forest"
    question = "Which class?\nA. airport\nB. forest\nAnswer with the letter."
    assert predicted_class("B", classes, question) == "forest"
    assert predicted_class("a beach", classes) is None


def test_classification_accuracy_and_per_class_f1_by_hand() -> None:
    pairs = [("a", "a"), ("a", "a"), ("b", "a"), ("b", "b"), (None, "b")]
    scores = classification_scores(pairs)
    assert scores["accuracy"] == 3 / 5
    a, b = scores["per_class"]["a"], scores["per_class"]["b"]
    assert (a["precision"], a["recall"]) == (1.0, 2 / 3)
    assert a["f1"] == pytest.approx(0.8)
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)
    assert scores["macro_f1"] == pytest.approx(0.65)
    assert scores["unmatched"] == 1
    perfect = classification_scores([("a", "a"), ("b", "b")])
    assert perfect["accuracy"] == perfect["macro_f1"] == 1.0


def test_iou_by_hand() -> None:
    # 10x10 boxes overlapping in a 5x10 strip: 50 / (100 + 100 - 50)
    assert iou_matrix([(0, 0, 10, 10)], [(5, 0, 15, 10)])[0, 0] == pytest.approx(1 / 3)


def test_several_boxes_pair_one_to_one_and_unpaired_boxes_score_zero() -> None:
    truth = [(0, 0, 10, 10), (20, 20, 30, 30)]
    iou, hits = answer_scores([(20, 20, 30, 30), (0, 0, 10, 10)], truth)  # order does not matter
    assert iou == 1.0 and hits[0.5] == 1.0
    iou, hits = answer_scores([(0, 0, 10, 10), (0, 0, 10, 10)], truth)  # a duplicate pairs once
    assert iou == 0.5 and hits[0.5] == 0.5
    iou, hits = answer_scores([(0, 0, 10, 10), (50, 50, 60, 60), (70, 70, 80, 80)], truth[:1])
    assert iou == pytest.approx(1 / 3)  # k = max(3 predicted, 1 true)
    assert answer_scores([], truth) == (0.0, {0.25: 0.0, 0.5: 0.0, 0.7: 0.0})


def test_grounding_accuracy_at_thresholds_and_miou() -> None:
    truth = [(0, 0, 10, 10)]
    cases = [
        ([(0, 0, 10, 10)], truth),  # IoU 1
        ([(5, 0, 15, 10)], truth),  # IoU 1/3
        ([(0, 0, 10, 6)], truth),  # IoU 0.6
        ([], truth),  # no box
    ]
    scores = grounding_scores(cases)
    assert scores["acc@0.25"] == 3 / 4
    assert scores["acc@0.5"] == 2 / 4
    assert scores["acc@0.7"] == 1 / 4
    assert scores["miou"] == pytest.approx((1 + 1 / 3 + 0.6) / 4)
    assert scores["no_box"] == 1
    assert grounding_scores([(truth, truth)])["acc@0.7"] == 1.0
