"""The local, relation, dialogue and description rules say only what the record supports.

Every number, side, place, size and count in an answer is recomputed here from the record with
plain geometry (shapely, polygon_to_obb, centre arithmetic, scipy's single linkage), not with
the module under test.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import yaml

from rsgpt4v.geometry import obb_to_polygon, polygon_to_obb
from rsgpt4v.instruct.phrasing import MIN_PHRASINGS
from rsgpt4v.instruct.rules import RULE_TASKS, RuleContext, rule_instructions
from rsgpt4v.schema import ImageInfo, Instruction, Object, Record
from rsgpt4v.vocabulary import category_name
from tests.rule_phrasings import read, renderings, sentences

TASKS = ["local_attributes", "region_caption", "relations", "multi_turn", "detailed_description"]
SEEDS = range(40)
PROMPTS = Path(__file__).parents[1] / "prompts" / "rules"
WORDS = yaml.safe_load((PROMPTS / "fact_words.yaml").read_text())
GSD = 0.5
REF = re.compile(r"<ref:(\d+)>")
NUMBER = r"([\d,]+(?:\.\d+)?)"


def _obb(id: int, category: str, cx: float, cy: float, w: float, h: float, angle: float) -> Object:
    polygon = obb_to_polygon(cx, cy, w, h, angle).round(2)
    x0, y0 = np.clip(polygon.min(axis=0), 0, None)
    x1, y1 = np.minimum(polygon.max(axis=0), (1000, 800))
    bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    return Object(id=id, category=category, bbox=bbox, polygon=polygon.tolist())


OBJECTS = [
    _obb(0, "ship", 150, 120, 60, 14, 0),
    _obb(1, "ship", 300, 130, 60, 14, 90),
    _obb(2, "ship", 500, 125, 60, 14, 45),
    _obb(3, "plane", 520, 420, 40, 38, 10),
    *[_obb(4 + i, "storage-tank", 620 + 40 * i, 650, 30, 30, 0) for i in range(4)],
    Object(id=8, category="harbor", bbox=[600, 40, 200, 100]),
    _obb(9, "small-vehicle", 8, 400, 20, 8, 0),  # crosses the left border: truncated
    _obb(10, "small-vehicle", 900, 300, 20, 8, 30),
]


def _scene(gsd: float | None = GSD, **meta) -> Record:
    image = ImageInfo(
        path="images/scene.tif",
        width=1000,
        height=800,
        gsd=gsd,
        crs="EPSG:32633",
        transform=[500000.0, 0.5, 0.0, 4650000.0, 0.0, -0.5],
    )
    return Record(
        id="toy/train/scene", dataset="toy", split="train", image=image, objects=OBJECTS, meta=meta
    )


SCENE = _scene()
BY_ID = {o.id: o for o in OBJECTS}


def _instructions(record: Record, task: str, context: RuleContext | None = None) -> list:
    return [i for seed in SEEDS for i in rule_instructions(record, [task], seed, context)]


def _answers(record: Record, task: str) -> list[tuple[Instruction, str, str]]:
    """(instruction, question, answer) of every turn, over many seeds."""
    turns = []
    for instruction in _instructions(record, task):
        messages = instruction.messages
        for question, answer in zip(messages[::2], messages[1::2], strict=True):
            turns.append((instruction, question.content, answer.content))
    return turns


def _centre(i: int) -> np.ndarray:
    x, y, w, h = BY_ID[i].bbox
    return np.array([x + w / 2, y + h / 2])


def _distance(i: int, j: int) -> float:
    return float(np.hypot(*(_centre(i) - _centre(j))))


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _about(stated: str, true: float) -> bool:
    """Within half a rounding step: 0.1 m below 10, 1 below 1000, else 10 (m², 1/10/100)."""
    step = 0.1 if true < 10 else 1.0 if true < 1000 else 10.0
    return abs(_number(stated) - true) <= step / 2 + 1e-6


def _about_area(stated: str, true: float) -> bool:
    step = 1.0 if true < 100 else 10.0 if true < 10_000 else 100.0
    return abs(_number(stated) - true) <= step / 2 + 1e-6


def _cell(i: int) -> str:
    fx, fy = _centre(i) / (1000, 800)
    rows, cols = ("top", "", "bottom"), ("left", "", "right")
    row, col = rows[min(int(fy * 3), 2)], cols[min(int(fx * 3), 2)]
    return f"{row}-{col}".strip("-") or "centre"


def _compass(i: int) -> str | None:
    _, _, w, h, angle = polygon_to_obb(BY_ID[i].polygon)
    if w < 1.3 * h:
        return None
    folded = (angle + 90) % 180 - 90
    if abs(folded) < 22.5:
        return "east-west"
    if abs(folded) > 67.5:
        return "north-south"
    return "northwest-southeast" if folded > 0 else "northeast-southwest"


def _check_object_claims(i: int, text: str) -> int:
    """Check every fact about object i stated in text; return how many were found."""
    found = 0
    obj = BY_ID[i]
    for match in re.finditer(rf"about {NUMBER} m long and {NUMBER} m wide", text):
        _, _, w, h, _ = polygon_to_obb(obj.polygon)
        assert _about(match[1], w * GSD) and _about(match[2], h * GSD), text
        found += 1
    for match in re.finditer(rf"about {NUMBER} m long(?! and)", text):
        assert _about(match[1], polygon_to_obb(obj.polygon)[2] * GSD), text
        found += 1
    for match in re.finditer(rf"about {NUMBER} m by {NUMBER} m", text):
        assert _about(match[1], obj.bbox[2] * GSD) and _about(match[2], obj.bbox[3] * GSD)
        found += 1
    for match in re.finditer(rf"covers about {NUMBER} m²", text):
        assert _about_area(match[1], shapely.Polygon(obj.polygon).area * GSD**2), text
        found += 1
    for cell, phrase in WORDS["position"].items():
        if phrase in text:
            assert cell == _cell(i), text
            found += 1
    for word, phrase in WORDS["orientation"].items():
        if phrase in text:
            assert word == _compass(i), text
            found += 1
    if i == 9:  # truncated: its real size is not known
        assert " m long" not in text and "m²" not in text and " m by " not in text
    return found


LOCAL_FACTS = ("position", "size", "orientation", "colour", "length", "extent", "area")
LOCAL_VALUES = {  # what each placeholder of a local fact may read
    "subject": r"the [a-z ]+ (?:at |marked )?<ref:\d+>|it|the [a-z ]+",
    "position": "|".join(WORDS["position"].values()),
    "size": "|".join(WORDS["size"].values()),
    "orientation": "|".join(WORDS["orientation"].values()),
    **{key: NUMBER[1:-1] for key in ("length", "width", "box_width", "box_height", "area")},
}


def test_local_attribute_answers_are_true_for_their_object() -> None:
    checked = Counter()
    for _, question, answer in _answers(SCENE, "local_attributes"):
        (i,) = {int(n) for n in REF.findall(question + answer)}
        name = category_name(BY_ID[i].category).singular
        obj = BY_ID[i]
        for n, sentence in enumerate(sentences(answer)):  # a fact, or (summary) every fact
            key, values = read("local_attributes", LOCAL_FACTS, sentence, **LOCAL_VALUES)
            subject = renderings("local_attributes", "subject", singular=name, ref=f"<ref:{i}>")
            later = renderings("local_attributes", "later_subject", singular=name)
            assert values["subject"] in {s.lower() for s in (later if n else subject)}, sentence
            if key == "length":
                _, _, w, h, _ = polygon_to_obb(obj.polygon)
                assert _about(values["length"], w * GSD) and _about(values["width"], h * GSD)
            elif key == "extent":
                assert _about(values["box_width"], obj.bbox[2] * GSD)
                assert _about(values["box_height"], obj.bbox[3] * GSD)
            elif key == "area":
                assert _about_area(values["area"], shapely.Polygon(obj.polygon).area * GSD**2)
            elif key == "position":
                assert values["position"] == WORDS["position"][_cell(i)], sentence
            elif key == "orientation":
                assert values["orientation"] == WORDS["orientation"][_compass(i)], sentence
            elif key == "size":
                fraction = obj.bbox[2] * obj.bbox[3] / (1000 * 800)
                bins = [("tiny", 0.001), ("small", 0.01), ("medium", 0.05), ("large", math.inf)]
                size = next(word for word, bound in bins if fraction < bound)
                assert values["size"] == WORDS["size"][size], sentence
            if i == 9:  # truncated: its real size is not known
                assert key not in ("length", "extent", "area")
            checked[key] += 1
    assert sum(checked.values()) > 20 and checked["size"] > 5


def test_region_captions_compose_true_facts() -> None:
    seen = set()
    for instruction, question, answer in _answers(SCENE, "region_caption"):
        (i,) = {int(n) for n in REF.findall(question)}
        assert set(instruction.regions) == {str(i), *REF.findall(answer)}
        name = category_name(BY_ID[i].category).singular
        _, values = read("region_caption", ["caption"], sentences(answer)[0], description="an? .+")
        assert re.match(rf"an? ([a-z-]+ )*{name}\b", values["description"]), answer
        _check_object_claims(i, values["description"])
        seen.add(i)
    assert len(seen) >= 8
    assert "small small" not in " ".join(a for _, _, a in _answers(SCENE, "region_caption"))


def _side_holds(a: int, b: int, side: str) -> bool:
    (dx, dy) = _centre(a) - _centre(b)
    wa, ha, wb, hb = BY_ID[a].bbox[2], BY_ID[a].bbox[3], BY_ID[b].bbox[2], BY_ID[b].bbox[3]
    mx, my = 0.5 * (wa + wb) / 2, 0.5 * (ha + hb) / 2
    return {
        "to the left of": dx < -mx,
        "to the right of": dx > mx,
        "above": dy < -my,
        "below": dy > my,
    }[side]


def _between(c: int, a: int, b: int) -> tuple[float, float]:
    segment = _centre(b) - _centre(a)
    point = _centre(c) - _centre(a)
    length2 = float(segment @ segment)
    return float(point @ segment) / length2, abs(
        point[0] * segment[1] - point[1] * segment[0]
    ) / length2


ONE_SIDE = "to the left of|to the right of|above|below"
RELATION_KEYS = ("relation", "relation_distance", "side_yes", "side_no", "nearest")
RELATION_KEYS += ("nearest_distance", "distance", "between", "between_yes", "between_no")
RELATION_VALUES = {
    **{key: r"<ref:\d+>" for key in ("a", "b", "c")},
    **{key: "[a-z ]+" for key in ("a_name", "b_name", "c_name")},
    "sides": f"(?:{ONE_SIDE})(?: and (?:{ONE_SIDE}))?",
    "side": ONE_SIDE,
    "actual": ONE_SIDE,
    "distance": NUMBER[1:-1],
}


def test_relation_answers_agree_with_centres_and_distances() -> None:
    kinds = Counter()
    for _, question, answer in _answers(SCENE, "relations"):
        refs = [int(n) for n in REF.findall(question)]
        key, values = read("relations", RELATION_KEYS, answer, **RELATION_VALUES)
        said = {k: int(REF.fullmatch(v)[1]) for k, v in values.items() if k in ("a", "b", "c")}
        if key in ("relation", "relation_distance", "side_yes", "side_no"):
            a, b = said["a"], said["b"]
            stated = values.get("sides") or values["side" if key == "side_yes" else "actual"]
            assert all(_side_holds(a, b, side) for side in stated.split(" and ")), answer
            kinds["side"] += 1
        if key in ("relation_distance", "distance"):
            a, b = refs[:2]
            assert _about(values["distance"], _distance(a, b) * GSD), (question, answer)
            kinds["distance"] += 1
        if key in ("nearest", "nearest_distance"):
            a, c = refs[0], said["c"]
            rivals = sorted(
                _distance(a, o.id)
                for o in OBJECTS
                if o.category == BY_ID[c].category and o.id not in (a, c)
            )
            assert not rivals or rivals[0] >= 1.2 * _distance(a, c)
            if key == "nearest_distance":
                assert _about(values["distance"], _distance(a, c) * GSD)
            kinds["nearest"] += 1
        if key in ("between", "between_yes", "between_no"):
            a, b = refs[-2:]
            fraction, offset = _between(said["c"], a, b)
            if key == "between_no":
                assert fraction < 0 or fraction > 1 or offset > 0.4
            else:
                assert 0.2 <= fraction <= 0.8 and offset <= 0.15
            kinds["between"] += 1
    assert kinds["side"] > 10 and kinds["distance"] > 5 and kinds["nearest"] >= 1


REASONING = ("is the closest", "closest pair", "largest", "spread out", "grouped", "in a row")


@pytest.mark.parametrize("classes", [None, {"ship"}])
def test_multi_turn_dialogues_have_three_to_eight_true_turns(classes: set[str] | None) -> None:
    record = SCENE
    if classes:  # one class only: no comparisons, no closest-to-another-class
        kept = [o for o in OBJECTS if o.category in classes]
        record = SCENE.model_copy(update={"objects": kept})
    chains = _instructions(record, "multi_turn")
    assert chains
    kinds = Counter(
        k for chain in chains for m in chain.messages for k in REASONING if k in m.content
    )
    assert kinds["closest pair"] if classes else kinds["is the closest"] and kinds["in a row"]
    for chain in chains:
        users = [m for m in chain.messages if m.role == "user"]
        assert 3 <= len(users) <= 8
        assert users[0].content.startswith("<image>\n")
        assert all("<image>" not in m.content for m in chain.messages[1:])
        answers = [m.content for m in chain.messages if m.role == "assistant"]
        for answer in answers:
            if count := re.match(r"There (?:is|are) (\d+) ([a-z ]+) in the image\.", answer):
                category = next(
                    c
                    for c in {o.category for o in OBJECTS}
                    if count[2] in {category_name(c).singular, category_name(c).plural}
                )
                assert int(count[1]) == sum(o.category == category for o in OBJECTS)
            if located := re.match(
                r"(?:They|The [a-z ]+) are at ((?:<ref:\d+>(?:, | and )?)+)\.", answer
            ):
                members = {int(n) for n in REF.findall(located[1])}
                category = BY_ID[min(members)].category
                assert members == {o.id for o in OBJECTS if o.category == category}


def _cut_off(i: int) -> bool:
    """Geometry within 1 px of the image border: its full size is not in the image."""
    x0, y0 = np.min(BY_ID[i].polygon, axis=0)
    x1, y1 = np.max(BY_ID[i].polygon, axis=0)
    return x0 < 1 or y0 < 1 or x1 > 999 or y1 > 799


def _check_reasoning(answer: str, members: set[int]) -> None:
    refs = [int(n) for n in REF.findall(answer)]
    if "is the closest" in answer:
        target = refs[1]
        others = [o.id for o in OBJECTS if o.category == BY_ID[target].category]
        per_member = {m: min(_distance(m, o) for o in others) for m in members}
        ranked = sorted(per_member.values())
        assert per_member[refs[0]] == ranked[0] and ranked[1] >= 1.2 * ranked[0]
        assert _distance(refs[0], target) == pytest.approx(ranked[0])
    elif "closest pair" in answer:
        pairs = sorted(_distance(a, b) for a in members for b in members if a < b)
        assert _distance(*refs) == pytest.approx(pairs[0]) and (
            len(pairs) == 1 or pairs[1] >= 1.2 * pairs[0]
        )
    elif "largest" in answer:
        inside = "fully inside" in answer
        assert inside == any(_cut_off(m) for m in members)
        areas = {m: shapely.Polygon(BY_ID[m].polygon).area for m in members if not _cut_off(m)}
        ranked = sorted(areas.values(), reverse=True)
        assert areas[refs[0]] == ranked[0] and (len(ranked) == 1 or ranked[0] >= 1.2 * ranked[1])
    elif "spread out" in answer or "grouped" in answer:
        hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
        ids = sorted(members)
        sizes = [polygon_to_obb(BY_ID[m].polygon)[2] for m in ids]
        labels = hierarchy.fcluster(
            hierarchy.linkage([_centre(m) for m in ids], "single"),
            np.nextafter(1.5 * float(np.median(sizes)), 0),
            "distance",
        )
        big = [c for c, n in Counter(labels).items() if n >= 3]
        if "spread out" in answer:
            assert not big
        else:
            clusters = {
                frozenset(m for m, label in zip(ids, labels, strict=True) if label == c)
                for c in big
            }
            assert clusters == (
                {frozenset(members)} if "one cluster" in answer else {frozenset(refs)}
            )
    elif "in a row" in answer:
        points = np.array([_centre(r) for r in refs])
        _, _, axes = np.linalg.svd(points - points.mean(axis=0))
        assert np.abs((points - points.mean(axis=0)) @ axes[1]).max() < 5
    elif re.match(r"(Yes|No): the image has", answer):
        counts = {int(n) for n in re.findall(r"(\d+) [a-z]", answer)}
        ours = len(members)
        assert ours in counts and answer.startswith("Yes") == (ours > min(counts | {ours}))


DESCRIBED = "detailed_description"


def test_detailed_description_integrates_true_counts_and_facts() -> None:
    (description,) = rule_instructions(SCENE, ["detailed_description"])
    text = description.messages[1].content
    counts = Counter(o.category for o in OBJECTS)
    overview = text.split(".")[0]
    for category, count in counts.items():
        name = category_name(category)
        assert f"{count} {name.singular if count == 1 else name.plural}" in overview
    hectares = 1000 * 800 * GSD**2 / 10_000
    read_tanks = {"plural": "storage tanks", "density": NUMBER[1:-1]}
    (density,) = filter(
        None, (read(DESCRIBED, ["density"], s, **read_tanks) for s in sentences(text))
    )
    assert abs(float(density[1]["density"]) - 4 / hectares) <= 0.05 + 1e-9
    row = next(s for s in text.split(". ") if "<ref:4>, <ref:5>, <ref:6> and <ref:7>" in s)
    assert "east-west" in row
    read_largest = {"description": r"an? [a-z -]+ <ref:\d+>.*"}
    (found,) = filter(
        None, (read(DESCRIBED, ["largest_inside"], s, **read_largest) for s in sentences(text))
    )
    # object 9 is cut off by the border, so the claim is limited to the others ("inside")
    largest = re.fullmatch(r"an? [a-z -]+ <ref:(\d+)>(.*)\.?", found[1]["description"])
    areas = {
        o.id: o.bbox[2] * o.bbox[3] if o.polygon is None else shapely.Polygon(o.polygon).area
        for o in OBJECTS
        if o.id != 9
    }
    assert int(largest[1]) == max(areas, key=areas.get) == 8
    _check_object_claims(8, largest[2])
    assert set(description.regions) == set(REF.findall(text))


@pytest.mark.parametrize("task", TASKS)
def test_every_ref_is_a_region_and_every_region_is_referred_to(task: str) -> None:
    for instruction in _instructions(SCENE, task):
        text = " ".join(m.content for m in instruction.messages)
        assert set(REF.findall(text)) == set(instruction.regions)
        for key, region in instruction.regions.items():
            assert region.bbox == BY_ID[int(key)].bbox
        assert sum(m.content.count("<image>") for m in instruction.messages) == 1


@pytest.mark.parametrize("task", TASKS)
def test_no_metres_without_gsd(task: str) -> None:
    for instruction in _instructions(_scene(gsd=None), task):
        text = " ".join(m.content for m in instruction.messages)
        assert not re.search(r"\d m\b|m²|per hectare", text), text


def test_unlabelled_and_incomplete_records() -> None:
    unlabelled = _scene(labelled=False)
    for task in TASKS:
        assert _instructions(unlabelled, task) == []
    incomplete = _scene(skipped_objects=1)
    for task in ("multi_turn", "detailed_description"):  # described, but never an exact count
        for instruction in _instructions(incomplete, task):
            for message in instruction.messages[1::2]:
                assert not re.search(
                    r"(?<!at least )\b\d+ (ships|storage tanks)", message.content, re.I
                )
    for instruction in _instructions(incomplete, "relations"):
        answer = instruction.messages[1].content
        # "which … is nearest" and "which object lies between" need every object labelled
        key, _ = read("relations", RELATION_KEYS, answer, **RELATION_VALUES)
        assert key not in ("nearest", "nearest_distance", "between"), answer
    assert _instructions(incomplete, "local_attributes")  # each about its own label


def test_same_seed_same_instructions() -> None:
    for task in TASKS:
        first = list(rule_instructions(SCENE, [task], seed=3))
        assert first == list(rule_instructions(SCENE, [task], seed=3))


def test_colour_claims_match_the_painted_image(tmp_path: Path) -> None:
    pixels = np.full((3, 800, 1000), 128, dtype=np.uint8)
    x, y, w, h = (int(v) for v in BY_ID[0].bbox)
    pixels[:, y : y + h + 1, x : x + w + 1] = np.array([220, 20, 20], dtype=np.uint8)[:, None, None]
    (tmp_path / "images").mkdir()
    profile = {"driver": "GTiff", "width": 1000, "height": 800, "count": 3, "dtype": "uint8"}
    with rasterio.open(tmp_path / "images" / "scene.tif", "w", **profile) as target:
        target.write(pixels)
    context = RuleContext(image_root=tmp_path)
    palette = re.compile(r"\b(white|light grey|dark grey|grey|black|red|orange|yellow|beige|"
                         r"brown|dark green|green|light blue|blue)\b")  # fmt: skip
    stated = Counter()
    for task in ("local_attributes", "region_caption", "detailed_description"):
        for instruction in _instructions(SCENE, task, context):
            question, answer = (m.content for m in instruction.messages[:2])
            if task == "detailed_description":
                largest = re.search(r"an? ([a-z -]+)<ref:(8)>", answer)  # the largest object
                i, described = int(largest[2]), largest[1]
            else:
                (i,) = {int(n) for n in REF.findall(question)}
                described = answer.split(". ")[0]  # later sentences name neighbours
            for colour in palette.findall(described):
                assert colour == ("red" if i == 0 else "grey"), answer
                stated[colour] += 1
    assert stated["red"] and stated["grey"]


def test_question_type_pools_have_enough_distinct_phrasings() -> None:
    for task in TASKS:
        pool = yaml.safe_load((PROMPTS / f"{task}.yaml").read_text())
        assert re.fullmatch(rf"{task}/v\d+", pool["template"]) and task in RULE_TASKS
        for key, value in pool.items():
            if key == "questions" or key.endswith("_questions"):
                assert len(set(value)) >= MIN_PHRASINGS, (task, key)
