"""Instructions true to the image: label completeness, answerability at the model's input,
thin oblique objects and overlapping tiles (docs/instructions.md)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.completeness import LabelCompleteness, load_completeness
from rsgpt4v.errors import InputError
from rsgpt4v.export import export_instructions
from rsgpt4v.geometry import box_fill, obb_to_polygon, polygon_bbox
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.instruct.answerability import MAX_COUNT, MIN_VISIBLE_PX, ModelInput
from rsgpt4v.instruct.rules import RuleContext, rule_instructions
from rsgpt4v.schema import ImageInfo, Instruction, Object, Record, read_jsonl, write_jsonl
from rsgpt4v.tile_windows import repeated_tiles
from rsgpt4v.tiling import TileSettings, tile_records
from rsgpt4v.vocabulary import dataset_completeness
from tests.rule_phrasings import renderings

OBJECT_TASKS = ("counting", "grounding", "presence", "region_identification", "relations")


def _record(objects: list[tuple[str, list[float]]], size: int = 400, **extra) -> Record:
    return Record(
        id=extra.pop("id", "toy/train/img"),
        dataset=extra.pop("dataset", "toy"),
        split="train",
        image=ImageInfo(path="images/img.png", width=size, height=size),
        objects=[Object(id=i, category=c, bbox=b) for i, (c, b) in enumerate(objects)],
        **extra,
    )


def _answers(record: Record, task: str, context: RuleContext | None = None) -> list[str]:
    return [i.messages[-1].content for i in rule_instructions(record, [task], 0, context)]


def _questions(record: Record, context: RuleContext) -> list[Instruction]:
    return list(rule_instructions(record, OBJECT_TASKS, 0, context))


# -- label completeness ---------------------------------------------------------------------
PARTIAL_CARS = {"toy": LabelCompleteness(frozenset({"car"}), source="a test")}
VOCABULARY = {"toy": ("car", "ship", "plane", "bridge")}


def test_a_partially_labelled_class_gets_no_absence_or_exact_count() -> None:
    context = RuleContext(vocabulary=VOCABULARY, completeness=PARTIAL_CARS)
    record = _record(
        [("car", [10, 10, 20, 20]), ("car", [60, 10, 20, 20]), ("ship", [200, 200, 40, 20])]
    )
    counts = _answers(record, "counting", context)
    cars = {"count": 2, "singular": "car", "plural": "cars"}
    assert set(counts) & renderings("counting", "many_at_least", **cars)
    assert set(counts) & renderings("counting", "one", singular="ship")  # exhaustive: exact
    assert all("car" not in a for a in _answers(record, "grounding", context))
    presence = _answers(record, "presence", context)
    assert set(presence) & renderings("presence", "present_at_least_many", **cars)
    # absent classes are exhaustive ones only; a car-free image is never called car-free
    no_cars = _record([("ship", [200, 200, 40, 20])])
    car = {"singular": "car", "plural": "cars"}
    car_free = renderings("presence", "absent", **car) | renderings(
        "presence", "false_premise", **car
    )
    assert not set(_answers(no_cars, "presence", context)) & car_free
    absent = set().union(
        *(renderings("presence", "absent", singular=c, plural=f"{c}s") for c in ("plane", "bridge"))
    )
    assert set(_answers(no_cars, "presence", context)) & absent


def test_partial_all_never_states_a_count_exactly_or_an_absence() -> None:
    context = RuleContext(vocabulary=VOCABULARY, completeness={"toy": LabelCompleteness("all")})
    record = _record([("car", [10, 10, 20, 20]), ("ship", [200, 200, 40, 20])])
    for instruction in _questions(record, context):
        answer = instruction.messages[-1].content
        assert not answer.startswith("No"), answer
        assert not re.search(r"There (is|are) \d", answer), answer


def test_dota_declares_its_dense_classes_partial_with_a_source() -> None:
    table = dataset_completeness(["dota-v1.0", "dota", "yolo", "my-own"])
    for name in ("dota-v1.0", "dota"):
        assert not table[name].exhaustive("small-vehicle") and not table[name].exhaustive("ship")
        assert table[name].exhaustive("plane") and "P1888" in table[name].source
    assert table["yolo"].exhaustive("anything") and table["my-own"].exhaustive("anything")


def test_a_completeness_file_overrides_the_declaration(tmp_path: Path) -> None:
    path = tmp_path / "completeness.yaml"
    path.write_text("dota:\n  partial: []\n  source: our own check\n", encoding="utf-8")
    table = dataset_completeness(["dota"], load_completeness(path))
    assert table["dota"].exhaustive("small-vehicle")
    path.write_text("dota:\n  partial: some\n", encoding="utf-8")
    with pytest.raises(InputError, match="partial must be 'all' or a list"):
        load_completeness(path)
    path.write_text("dota:\n  parcial: all\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown key 'parcial'"):
        load_completeness(path)


def test_min_size_keeps_absences_only_where_the_unlabelled_sizes_are_invisible() -> None:
    labelling = {"toy": LabelCompleteness(min_size=20)}
    record = _record([("ship", [10, 10, 80, 80])], size=2048)
    sharp = RuleContext(VOCABULARY, completeness=labelling, model_input=ModelInput(size=2048))
    small = RuleContext(VOCABULARY, completeness=labelling, model_input=ModelInput("llava"))
    # at full size a 15-px car could be there unlabelled; at 336 px it would be 2.5 px
    assert not any(a.startswith("No") for a in _answers(record, "presence", sharp))
    assert any(a.startswith("No") for a in _answers(record, "presence", small))


# -- answerability at the model's input -----------------------------------------------------
def _grid(count: int, side: float, size: int = 2048) -> list[tuple[str, list[float]]]:
    step = size // math.ceil(math.sqrt(count))
    cells = [
        (x, y) for y in range(0, size - step + 1, step) for x in range(0, size - step + 1, step)
    ]
    return [("car", [x + 2.0, y + 2.0, side, side]) for x, y in cells[:count]]


def test_tiny_objects_get_no_counting_or_grounding_at_llava_input_large_ones_do() -> None:
    llava = RuleContext(VOCABULARY, model_input=ModelInput("llava"))
    tiny = _record(_grid(200, 6), size=2048)
    assert _answers(tiny, "counting", llava) == [] and _answers(tiny, "grounding", llava) == []
    assert _answers(tiny, "region_identification", llava) == []
    assert _answers(tiny, "relations", llava) == []
    for task in ("local_attributes", "region_caption", "multi_turn"):
        assert _answers(tiny, task, llava) == [], task
    reasons = " | ".join(llava.skips)
    for task in ("counting", "grounding", "region_identification", "local_attributes"):
        assert f"{task}: objects too small at the model's input" in reasons, reasons
    large = _record(_grid(20, 80), size=2048)  # 80 px → 13 px at 336
    (count,) = _answers(large, "counting", llava)
    assert count in renderings("counting", "many", count=20, singular="car", plural="cars")
    (grounding,) = _answers(large, "grounding", llava)
    assert len(re.findall(r"<ref:\d+>", grounding)) == 20


def test_sizes_follow_each_family_input() -> None:
    assert ModelInput("llava").scale(2048, 1024) == pytest.approx(336 / 2048)
    assert ModelInput(size=512).scale(1024, 2048) == pytest.approx(0.25)
    assert ModelInput("pixel").scale(5000, 5000) == 1.0
    assert ModelInput().scale(5000, 5000) is None  # not judged
    # Qwen2.5-VL shows a 1024² tile at 1036² (smart_resize to multiples of 28)
    assert ModelInput("qwen25vl").scale(1024, 1024) == pytest.approx(1036 / 1024)
    with pytest.raises(InputError, match="unknown model family"):
        ModelInput("llava-2")


def test_an_object_that_is_thin_across_is_judged_by_its_oriented_width() -> None:
    pier = obb_to_polygon(500, 500, 600, 16, 45)  # 600 x 16 px at 45°: 430 px box, 5 px at 336
    record = Record(
        id="toy/train/pier",
        dataset="toy",
        split="train",
        image=ImageInfo(path="p.png", width=1024, height=1024),
        objects=[Object(id=0, category="pier", bbox=polygon_bbox(pier), polygon=pier.tolist())],
    )
    assert (
        _answers(record, "region_identification", RuleContext(model_input=ModelInput("llava")))
        == []
    )
    assert _answers(record, "region_identification", RuleContext(model_input=ModelInput(size=1024)))


def test_counts_above_the_cap_are_not_asked() -> None:
    record = _record(_grid(MAX_COUNT + 1, 30), size=2048)
    assert _answers(record, "counting") == [] and _answers(record, "grounding") == []
    assert MIN_VISIBLE_PX == 10  # the documented number (docs/instructions.md)


def test_cli_instruct_model_family_prints_what_was_not_asked(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "records.jsonl", [_record(_grid(200, 6), size=2048)])
    args = ["instruct", str(tmp_path / "records.jsonl"), "-o", str(tmp_path / "out.jsonl")]
    result = CliRunner().invoke(app, [*args, "--tasks", "counting", "--model-family", "llava"])
    assert result.exit_code == 0, result.output
    assert "object sizes: llava's input" in result.output
    assert "not asked: counting: objects too small at the model's input: 1" in result.output
    both = CliRunner().invoke(app, [*args, "--model-family", "llava", "--input-size", "336"])
    assert both.exit_code != 0 and "not both" in both.output


# -- thin oblique objects ---------------------------------------------------------------------
def _oblique_instruction(tmp_path: Path) -> Path:
    pier = obb_to_polygon(500, 500, 600, 40, 45)
    assert box_fill(pier) < 0.35
    record = Record(
        id="toy/train/pier",
        dataset="toy",
        split="train",
        image=ImageInfo(path="images/pier.png", width=1024, height=1024),
        objects=[
            Object(id=0, category="pier", bbox=polygon_bbox(pier), polygon=pier.tolist()),
            Object(id=1, category="ship", bbox=[100, 800, 60, 30]),
        ],
    )
    image = tmp_path / "images" / "pier.png"
    image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((1024, 1024, 3), np.uint8)).save(image)
    write_jsonl(tmp_path / "records.jsonl", [record])
    generate_instructions(
        tmp_path / "records.jsonl", tmp_path / "instr.jsonl", tasks="region_identification"
    )
    return tmp_path / "instr.jsonl"


def test_a_thin_oblique_object_gets_an_oriented_region_in_geochat_and_is_skipped_in_llava(
    tmp_path: Path,
) -> None:
    instructions = _oblique_instruction(tmp_path)
    assert len(list(read_jsonl(instructions, Instruction))) == 2
    geochat = export_instructions(instructions, tmp_path / "g.json", boxes="geochat")
    questions = [c["conversations"][0]["value"] for c in json.loads(geochat.output.read_text())]
    angles = [int(a) for q in questions for a in re.findall(r"\|<(-?\d+)>\}", q)]
    assert geochat.written == 2 and sorted(abs(a) for a in angles) == [0, 45]
    pixel = export_instructions(instructions, tmp_path / "p.json", boxes="pixel")
    texts = " ".join(c["conversations"][0]["value"] for c in json.loads(pixel.output.read_text()))
    assert pixel.written == 2 and texts.count("[[") == 1  # the pier as its outline
    llava = export_instructions(instructions, tmp_path / "l.json", boxes="llava")
    assert llava.written == 1 and llava.oblique_skipped == 1 and not llava.rejects
    (left_out,) = [json.loads(line) for line in llava.not_written_file.read_text().splitlines()]
    assert left_out["file"] == str(instructions) and left_out["line"] in (1, 2)
    assert (
        left_out["entry"].endswith("#region_identification-0")
        and "thin oblique" in left_out["reason"]
    )
    assert llava.not_written_file.name == "l.json.not-written.jsonl"
    geochat_again = export_instructions(instructions, tmp_path / "l.json", boxes="geochat")
    assert geochat_again.not_written_file is None and not llava.not_written_file.exists()


# -- overlapping tiles ------------------------------------------------------------------------
def test_a_tile_that_repeats_a_taken_tile_names_it() -> None:
    a, b, c = frozenset(range(10)), frozenset(range(1, 11)), frozenset(range(20, 25))
    assert repeated_tiles([a, b, c, frozenset()]) == [None, 0, None, None]
    assert repeated_tiles([frozenset({1}), frozenset({1, 2, 3})]) == [1, None]


def test_overlapping_tiles_get_scene_questions_once(tmp_path: Path) -> None:
    ships = [
        Object(id=i, category="ship", bbox=[x, y, 30, 30])
        for i, (x, y) in enumerate((x, y) for x in range(300, 800, 100) for y in (300, 600))
    ]
    image = tmp_path / "images" / "scene.png"
    image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((1182, 1111, 3), np.uint8)).save(image)
    scene = Record(
        id="toy/train/scene",
        dataset="toy",
        split="train",
        image=ImageInfo(path="images/scene.png", width=1111, height=1182),
        objects=ships,
    )
    write_jsonl(tmp_path / "records.jsonl", [scene])
    summary = tile_records(
        tmp_path / "records.jsonl",
        tmp_path / "tiles.jsonl",
        tiles_dir=tmp_path / "tiles",
        image_root=tmp_path,
        settings=TileSettings(size=1024, gap=200),
    )
    tiles = list(read_jsonl(tmp_path / "tiles.jsonl", Record))
    assert len(tiles) == 4 and summary.counts[next(iter(summary.counts))] >= 1
    taken = [t for t in tiles if "repeats" not in t.meta]
    assert len(taken) == 1 and all(
        t.meta["repeats"] == taken[0].id for t in tiles if t not in taken
    )
    generate_instructions(tmp_path / "tiles.jsonl", tmp_path / "out.jsonl", tasks="counting")
    counted = [i.record_id for i in read_jsonl(tmp_path / "out.jsonl", Instruction)]
    assert counted == [taken[0].id]


def test_a_misspelt_class_in_a_completeness_file_is_an_error_naming_it(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "records.jsonl", [_record([("car", [10, 10, 20, 20])])])
    table = tmp_path / "completeness.yaml"
    table.write_text("toy:\n  partial: [cars]\n", encoding="utf-8")
    with pytest.raises(InputError, match="'cars' is not a class of that dataset") as error:
        generate_instructions(tmp_path / "records.jsonl", tmp_path / "o.jsonl", completeness=table)
    assert str(table) in str(error.value)
    table.write_text("toy:\n  partial: [car]\nother:\n  partial: [x]\n", encoding="utf-8")
    summary = generate_instructions(
        tmp_path / "records.jsonl", tmp_path / "o.jsonl", tasks="counting", completeness=table
    )
    assert summary.instructions == 1  # "at least 1 car"; the dataset not in the input is ignored
