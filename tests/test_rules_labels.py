"""Rule tasks from labels: classification, VQA passthrough, presence, region id, geographic.

Every answer is parsed back and checked against the record; geographic numbers are computed
here independently (pyproj straight from the pixel position, shoelace areas).
"""

from __future__ import annotations

import math
import random
import re

import pytest
from pyproj import Transformer

from rsgpt4v.instruct.phrasing import MIN_PHRASINGS, load_pool
from rsgpt4v.instruct.rules import RuleContext, rule_instructions
from rsgpt4v.instruct.rules.geographic import (
    DIRECTIONS,
    MAX_AREAS,
    MAX_LOCATIONS,
    object_area_px,
)
from rsgpt4v.instruct.rules.presence import MAX_FALSE_PREMISES, MAX_NEGATIVES
from rsgpt4v.instruct.rules.question_pools import load_questions
from rsgpt4v.instruct.rules.regions import MAX_REGION_QUESTIONS, indefinite_article
from rsgpt4v.schema import QA, ImageInfo, Instruction, Object, Record
from rsgpt4v.vocabulary import category_name
from tests.rule_phrasings import matches, renderings

VOCABULARY = ("harbor", "helicopter", "plane", "ship", "small-vehicle", "storage-tank")
CONTEXT = RuleContext(vocabulary={"toy": VOCABULARY})


def _record(objects=(), *, dataset: str = "toy", image: ImageInfo | None = None, **extra):
    return Record(
        id=f"{dataset}/train/img",
        dataset=dataset,
        split="train",
        image=image or ImageInfo(path="images/img.png", width=200, height=100),
        objects=[
            Object(id=i, category=o[0], bbox=o[1], polygon=_polygon(o))
            for i, o in enumerate(objects)
        ],
        **extra,
    )


def _polygon(spec: tuple) -> list[list[float]] | None:
    """(class, bbox) or (class, bbox, polygon) → the polygon or None."""
    return spec[2] if len(spec) > 2 else None


def _run(record: Record, task: str, context: RuleContext = CONTEXT, seed: int = 0):
    return list(rule_instructions(record, [task], seed, context))


def _qa(instruction: Instruction) -> tuple[str, str]:
    return instruction.messages[0].content.removeprefix("<image>\n"), instruction.messages[
        1
    ].content


SCENE = _record(
    [
        ("ship", [10, 10, 10, 10]),
        ("ship", [50, 50, 10, 10]),
        ("small-vehicle", [80, 20, 4, 2]),
        ("ship", [120, 30, 10, 10]),
    ]
)


# -- classification ------------------------------------------------------------------------
SCENES = ("airport", "beach", "dense_residential", "forest", "harbor", "river")


def test_open_classification_answers_the_label() -> None:
    record = _record(label="dense_residential")
    (open_, *_) = _run(record, "classification", RuleContext(vocabulary={"toy": SCENES}))
    assert _qa(open_)[1] in renderings("classification", "open", label="dense residential area")
    assert _qa(open_)[0] in load_pool("classification").questions


@pytest.mark.parametrize("seed", range(20))
def test_multiple_choice_holds_the_label_once_and_the_letter_points_to_it(seed: int) -> None:
    record = _record(label="harbor")
    vocabulary = (*SCENES, "Harbor", "dense residential")  # spelling variants of classes
    context = RuleContext(vocabulary={"toy": vocabulary})
    choice = _run(record, "classification", context, seed)[1]
    question, answer = _qa(choice)
    options = dict(re.findall(r"^([A-D])\. (.+)$", question, flags=re.MULTILINE))
    assert len(options) == 4 and list(options) == ["A", "B", "C", "D"]
    assert list(options.values()).count("harbor") == 1
    assert len(set(options.values())) == 4
    assert set(options.values()) <= {category_name(c).singular for c in vocabulary}
    letter, label = answer.split(". ", 1)
    assert label == "harbor" and options[letter] == "harbor"


def test_choices_are_deterministic_and_vary_with_the_seed() -> None:
    record = _record(label="beach")
    context = RuleContext(vocabulary={"toy": SCENES})
    first = _run(record, "classification", context, seed=1)
    assert first == _run(record, "classification", context, seed=1)
    questions = {_qa(_run(record, "classification", context, s)[1])[0] for s in range(10)}
    assert len(questions) > 1


def test_classification_skips_records_without_label_and_choices_without_distractors() -> None:
    assert _run(_record(), "classification") == []
    lonely = _run(_record(label="beach"), "classification", RuleContext({"toy": ("beach",)}))
    assert len(lonely) == 1  # the open question only
    two = _run(_record(label="beach"), "classification", RuleContext({"toy": ("beach", "lake")}))
    assert re.findall(r"^([A-D])\. ", _qa(two[1])[0], flags=re.MULTILINE) == ["A", "B"]


# -- VQA passthrough -----------------------------------------------------------------------
def test_vqa_keeps_question_and_answer_and_records_the_type() -> None:
    qa = [
        QA(question="How many buildings are flooded?", answer="3", type="Simple_Counting"),
        QA(question="Is the road flooded?", answer="non flooded"),
        QA(question="What is the overall condition?", answer=" "),  # unanswered: skipped
        QA(question="How many buildings are flooded?", answer="3", type="Simple_Counting"),
    ]
    out = _run(_record(qa=qa, meta={"labelled": False}), "vqa")
    assert [i.id.rsplit("#", 1)[1] for i in out] == ["vqa-0", "vqa-1"]
    for instruction, item in zip(out, qa, strict=False):
        question, answer = _qa(instruction)
        assert item.question in question and answer == item.answer
    assert out[0].source.model_dump()["qa_type"] == "Simple_Counting"
    assert "qa_type" not in out[1].source.model_dump()
    for instruction in out:  # the extra source field survives a write and a read
        assert Instruction.model_validate_json(instruction.model_dump_json()) == instruction


# -- presence ------------------------------------------------------------------------------
def _names(category: str) -> dict[str, str]:
    name = category_name(category)
    return {"singular": name.singular, "plural": name.plural}


def _absent(category: str, key: str) -> set[str]:
    """Every wording of "there is no <category>" (``absent`` or ``false_premise``)."""
    return renderings("presence", key, count=0, **_names(category))


def test_presence_counts_negatives_and_false_premises_are_true() -> None:
    counts = {"ship": 3, "small-vehicle": 1}
    out = _run(SCENE, "presence")
    answers = [a for _, a in map(_qa, out)]
    yes = [a for a in answers if a.startswith("Yes")]
    assert len(yes) == len(counts)
    for category, count in counts.items():  # each class once, with its label count
        key = "present_one" if count == 1 else "present_many"
        said = renderings("presence", key, count=count, **_names(category))
        assert sum(a in said for a in yes) == 1, category
    named = [c for a in answers for c in VOCABULARY if a in _absent(c, "absent")]
    assert 0 < len(named) <= MAX_NEGATIVES and len(set(named)) == len(named)
    refuted = [c for a in answers for c in VOCABULARY if a in _absent(c, "false_premise")]
    assert len(refuted) == MAX_FALSE_PREMISES
    for category in named + refuted:  # absent from the image, inside the vocabulary
        assert category in VOCABULARY and category not in counts
    assert all(q.count("?") == 1 for q, _ in map(_qa, out))


def test_negatives_never_name_a_class_that_could_cover_a_present_object() -> None:
    vocabulary = ("ship", "merchant ship", "large-vehicle", "small-vehicle", "Small_Vehicle", "dam")
    record = _record([("merchant ship", [5, 5, 9, 9]), ("small-vehicle", [30, 30, 4, 4])])
    context = RuleContext(vocabulary={"toy": vocabulary})
    for seed in range(10):
        answers = [a for _, a in map(_qa, _run(record, "presence", context, seed))]
        absent = [a for a in answers if not a.startswith("Yes")]
        assert absent and all("dam" in a for a in absent)


def test_presence_needs_complete_labels_with_objects_and_a_flat_vocabulary() -> None:
    ship = [("ship", [0, 0, 5, 5])]
    assert _run(_record(ship, meta={"labelled": False}), "presence") == []
    # labels that lost objects: present classes are a lower bound, and nothing is called absent
    partial = _run(_record(ship, meta={"skipped_objects": 2}), "presence")
    at_least_one_ship = renderings("presence", "present_at_least_one", singular="ship")
    assert [_qa(i)[1] in at_least_one_ship for i in partial] == [True]
    assert _run(_record([], label="harbor"), "presence") == []  # a scene record, no objects
    hrsc = RuleContext({"hrsc2016": ("aircraft carrier", "ship")})  # a carrier is a ship
    nested = _run(_record(ship, dataset="hrsc2016"), "presence", hrsc)
    assert [_qa(i)[1] in at_least_one_ship for i in nested] == [True]  # HRSC: partial


# -- region identification ------------------------------------------------------------------
def test_region_identification_names_the_class_of_the_box() -> None:
    out = _run(SCENE, "region_identification")
    assert len(out) == len(SCENE.objects)
    for instruction in out:
        question, answer = _qa(instruction)
        (ref,) = re.findall(r"<ref:(\d+)>", question)
        obj = SCENE.objects[int(ref)]
        assert list(instruction.regions) == [ref] and instruction.regions[ref].bbox == obj.bbox
        name = category_name(obj.category).singular
        assert answer in renderings("region_identification", "object", article="a", singular=name)


def test_region_identification_skips_boxes_shared_by_two_classes_and_caps_the_count() -> None:
    record = _record(
        [("ship", [0, 0, 10, 10]), ("harbor", [0, 0, 10, 10.5]), ("ship", [40, 40, 5, 5])]
    )
    assert [list(i.regions) for i in _run(record, "region_identification")] == [["2"]]
    many = _record([("plane", [i * 5, 0, 4, 4]) for i in range(30)])
    out = _run(many, "region_identification")
    assert len(out) == MAX_REGION_QUESTIONS and len({i.id for i in out}) == MAX_REGION_QUESTIONS


@pytest.mark.parametrize(
    ("noun", "article"),
    [("airplane", "an"), ("ship", "a"), ("utility truck", "a"), ("hour glass", "an")],
)
def test_indefinite_article(noun: str, article: str) -> None:
    assert indefinite_article(noun) == article


# -- geographic ----------------------------------------------------------------------------
E0, N0, GSD = 500_000.0, 4_650_000.0, 0.5  # UTM 33N, at the zone's central meridian
UTM = ImageInfo(
    path="images/geo.tif",
    width=400,
    height=400,
    gsd=GSD,
    crs="EPSG:32633",
    transform=[E0, GSD, 0.0, N0, 0.0, -GSD],
)
GEO_OBJECTS = [
    ("storage-tank", [100, 100, 20, 20], [[100, 100], [120, 100], [120, 120], [100, 120]]),
    ("ship", [200, 100, 30, 10], [[200, 105], [215, 100], [230, 105], [215, 110]]),  # east
    ("plane", [100, 250, 16, 16], None),  # south of the tank, box only
    ("ship", [250, 250, 10, 10], [[250, 250], [260, 250], [260, 260], [250, 260]]),  # south-east
    ("harbor", [0, 300, 50, 50], None),  # touches the border: cut, never asked about
]


def _lat_lon(text: str) -> tuple[float, float]:
    lat, ns, lon, ew = re.search(r"([\d.]+)° ([NS])\D*?([\d.]+)° ([EW])", text).groups()
    return float(lat) * (1 if ns == "N" else -1), float(lon) * (1 if ew == "E" else -1)


def _shoelace(points: list[list[float]]) -> float:
    pairs = zip(points, points[1:] + points[:1], strict=True)
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairs)) / 2


def _geo(image: ImageInfo = UTM, objects=GEO_OBJECTS, seed: int = 0) -> list[Instruction]:
    return _run(_record(objects, image=image), "geographic", seed=seed)


def _split(out: list[Instruction]) -> dict[str, list[Instruction]]:
    """Location (degrees), area (m²) and direction answers, by what each answer states."""
    found: dict[str, list[Instruction]] = {"location": [], "area": [], "direction": []}
    for instruction in out:
        answer = _qa(instruction)[1]
        kind = "location" if "°" in answer else "area" if "m²" in answer else "direction"
        found[kind].append(instruction)
    return found


@pytest.mark.parametrize("rotation", [0.0, 0.1])
def test_latitude_longitude_follow_from_transform_and_crs(rotation: float) -> None:
    a, b = GSD * math.cos(rotation), GSD * math.sin(rotation)
    image = UTM.model_copy(update={"transform": [E0, a, -b, N0, -b, -a]})
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    located = [i for seed in range(8) for i in _split(_geo(image, seed=seed))["location"]]
    assert len(located) == 8 * MAX_LOCATIONS
    asked = {ref for instruction in located for ref in instruction.regions}
    assert asked == {"0", "1", "2", "3"}  # never the harbour cut by the border: no true centre
    for instruction in located:
        (ref,) = instruction.regions
        x, y, w, h = GEO_OBJECTS[int(ref)][1]
        cx, cy = x + w / 2, y + h / 2
        lon, lat = to_wgs84.transform(E0 + cx * a - cy * b, N0 - cx * b - cy * a)
        got_lat, got_lon = _lat_lon(_qa(instruction)[1])
        assert got_lat == pytest.approx(lat, abs=1e-6) and got_lon == pytest.approx(lon, abs=1e-6)


def test_areas_are_outline_pixels_times_ground_pixel_area() -> None:
    areas = [i for seed in range(8) for i in _split(_geo(seed=seed))["area"]]
    assert len(areas) == 8 * MAX_AREAS
    assert {ref for instruction in areas for ref in instruction.regions} == {"0", "1", "2", "3"}
    for instruction in areas:
        (ref,) = instruction.regions
        _, (_, _, w, h), polygon = GEO_OBJECTS[int(ref)]
        pixels = _shoelace(polygon) if polygon else w * h
        area = float(re.search(r"([\d.]+) m²", _qa(instruction)[1]).group(1))
        assert area == pytest.approx(pixels * GSD**2, abs=0.1)


def test_areas_in_a_feet_crs_are_converted_to_square_metres() -> None:
    feet = 0.3048006096012192  # US survey foot
    image = UTM.model_copy(
        update={
            "crs": "EPSG:2263",
            "transform": [984_000.0, 2.0, 0, 200_000.0, 0, -2.0],
            "gsd": None,
        }
    )
    for instruction in _split(_geo(image))["area"]:
        (ref,) = instruction.regions
        _, (_, _, w, h), polygon = GEO_OBJECTS[int(ref)]
        pixels = _shoelace(polygon) if polygon else w * h
        area = float(re.search(r"([\d.]+) m²", _qa(instruction)[1]).group(1))
        assert area == pytest.approx(pixels * (2.0 * feet) ** 2, abs=0.1)


def _direction_refs(question: str) -> tuple[int, int]:
    """(target, reference) object ids, read through whichever phrasing asked the question."""
    for phrasing in load_questions("geographic", "direction_questions"):
        marked = re.escape(phrasing.format(ref="@T@", ref_b="@O@", singular="@", singular_b="@"))
        pattern = marked.replace("@T@", r"<ref:(?P<t>\d+)>").replace("@O@", r"<ref:(?P<o>\d+)>")
        pattern = pattern.replace("@", ".+")
        if match := re.fullmatch(pattern, question):
            return int(match["t"]), int(match["o"])
    raise AssertionError(f"no phrasing matches {question!r}")


EXPECTED_DIRECTIONS = {  # (target, reference) → where the target lies, from the layout above
    (1, 0): "east", (2, 0): "south", (3, 0): "south-east", (3, 2): "east", (3, 1): "south",
    (2, 1): "south-west",
}  # fmt: skip
OPPOSITE = {
    "east": "west",
    "south": "north",
    "south-east": "north-west",
    "south-west": "north-east",
}


def test_directions_match_the_objects_layout_on_a_north_up_image() -> None:
    expected = EXPECTED_DIRECTIONS | {
        (o, t): OPPOSITE[d] for (t, o), d in EXPECTED_DIRECTIONS.items()
    }
    asked = set()
    for seed in range(15):
        for instruction in _split(_geo(seed=seed))["direction"]:
            question, answer = _qa(instruction)
            target, origin = _direction_refs(question)
            assert set(instruction.regions) == {str(target), str(origin)}
            said = [
                d for d in DIRECTIONS if matches("geographic", "direction", answer, direction=d)
            ]
            assert said == [expected[(target, origin)]]
            asked.add((target, origin))
    assert len(asked) >= 6


def test_geographic_skips_what_it_cannot_answer_truthfully() -> None:
    assert _geo(UTM.model_copy(update={"crs": None, "transform": None})) == []
    for unusable in ("EPSG:999999", 'LOCAL_CS["site grid"]'):  # unknown; no lat/lon at all
        assert _geo(UTM.model_copy(update={"crs": unusable})) == []
    rotated = UTM.model_copy(update={"transform": [E0, GSD, 0.05, N0, 0.05, -GSD]})
    assert _split(_geo(rotated))["direction"] == []  # not north-up: no compass questions
    degrees = UTM.model_copy(update={"crs": "EPSG:4326", "transform": [15, 1e-5, 0, 42, 0, -1e-5]})
    assert _split(_geo(degrees.model_copy(update={"gsd": None})))["area"] == []  # degrees²
    assert len(_split(_geo(degrees))["area"]) == MAX_AREAS  # a known GSD gives metres


# -- pools ---------------------------------------------------------------------------------
POOL_KEYS = {
    "classification": ["questions", "choice_questions"],
    "vqa": ["questions"],
    "presence": ["questions", "false_premise_questions"],
    "region_identification": ["questions"],
    "geographic": ["questions", "area_questions", "direction_questions"],
}


@pytest.mark.parametrize("task", list(POOL_KEYS))
def test_every_question_type_has_enough_phrasings_that_format(task: str) -> None:
    pool = load_pool(task)
    assert re.fullmatch(rf"{task}/v\d+", pool.template)
    words = {"ref": "<ref:0>", "ref_b": "<ref:1>", "singular": "ship", "singular_b": "harbor",
             "plural": "ships", "options": "A. x", "question": "Q?", "count": 2}  # fmt: skip
    for key in POOL_KEYS[task]:
        phrasings = pool.questions if key == "questions" else load_questions(task, key)
        assert len(set(phrasings)) >= MIN_PHRASINGS
        assert all(p.format(**words) for p in phrasings)


def test_rules_do_not_touch_global_random_state() -> None:
    record = _record(GEO_OBJECTS, image=UTM, label="harbor", qa=[QA(question="Q?", answer="A")])
    tasks = ["classification", "vqa", "presence", "region_identification", "geographic"]
    random.seed(1)
    first = list(rule_instructions(record, tasks, 3, CONTEXT))
    random.seed(2)
    assert first == list(rule_instructions(record, tasks, 3, CONTEXT))
    assert {i.task for i in first} == set(tasks)


def test_object_areas_are_shapely_areas() -> None:
    """Outline areas are summed in plain Python the way shapely (GEOS) sums them."""
    shapely = pytest.importorskip("shapely")
    rng = random.Random(4)
    for _ in range(300):
        corners = [
            [round(rng.uniform(0, 500), 1), round(rng.uniform(0, 500), 2)]
            for _ in range(rng.randint(3, 7))
        ]
        obj = Object(id=0, category="x", bbox=[1, 1, 1, 1], polygon=corners)
        assert object_area_px(obj) == pytest.approx(
            shapely.Polygon(corners).area, rel=1e-12, abs=1e-9
        )
    assert object_area_px(Object(id=0, category="x", bbox=[1, 1, 4, 5])) == 20
