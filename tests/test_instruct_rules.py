from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from rsgpt4v.errors import InputError
from rsgpt4v.instruct import dataset_vocabulary, generate_instructions, parse_tasks
from rsgpt4v.instruct.lines import RecordLines
from rsgpt4v.instruct.phrasing import MIN_PHRASINGS, load_pool
from rsgpt4v.instruct.rules import (
    RULE_TASKS,
    RuleContext,
    make_instruction,
    rule_drafts,
    rule_instructions,
)
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.schema import ImageInfo, Instruction, Object, Record, read_jsonl, write_jsonl
from rsgpt4v.vocabulary import category_name
from tests.rule_phrasings import renderings


def _record(objects: list[tuple[str, list[float]]], **extra) -> Record:
    return Record(
        id="toy/train/img",
        dataset="toy",
        split="train",
        image=ImageInfo(path="images/img.png", width=200, height=100),
        objects=[Object(id=i, category=c, bbox=b) for i, (c, b) in enumerate(objects)],
        **extra,
    )


SCENE = _record(
    [
        ("ship", [0, 0, 10, 10]),
        ("small-vehicle", [20, 20, 4, 2]),
        ("ship", [50, 50, 10, 10]),
        ("ship", [80, 10, 10, 10]),
    ],
    captions=["A harbour with three ships.", "A harbour with three ships.", "Ships at a quay."],
)


def _by_task(record: Record, task: str) -> list[Instruction]:
    return list(rule_instructions(record, [task]))


def test_counting_answers_equal_label_counts() -> None:
    ships, vehicles = (i.messages[1].content for i in _by_task(SCENE, "counting"))
    assert ships in renderings("counting", "many", count=3, singular="ship", plural="ships")
    assert vehicles in renderings("counting", "one", singular="small vehicle")


def test_grounding_refers_to_every_box_of_the_class() -> None:
    ships = next(i for i in _by_task(SCENE, "grounding") if "ship" in i.messages[1].content)
    refs = "<ref:0>, <ref:2> and <ref:3>"
    every = renderings("grounding", "many", count=3, singular="ship", plural="ships", refs=refs)
    assert ships.messages[1].content in every
    assert set(ships.regions) == {"0", "2", "3"}
    assert ships.regions["2"].bbox == [50, 50, 10, 10]
    refs = set(re.findall(r"<ref:(\d+)>", ships.messages[1].content))
    assert refs == set(ships.regions)


def test_brief_captions_are_deduplicated() -> None:
    answers = [i.messages[1].content for i in _by_task(SCENE, "brief_caption")]
    assert answers == ["A harbour with three ships.", "Ships at a quay."]


def test_every_instruction_opens_with_one_image_token() -> None:
    for instruction in rule_instructions(SCENE, RULE_TASKS):
        first = instruction.messages[0]
        assert first.role == "user" and first.content.startswith("<image>\n")
        assert sum(m.content.count("<image>") for m in instruction.messages) == 1
        assert instruction.image_size == [200, 100]


def test_unlabelled_records_get_no_object_questions_incomplete_ones_no_exact_counts() -> None:
    unlabelled = _record([], meta={"labelled": False})
    assert _by_task(unlabelled, "counting") == [] and _by_task(unlabelled, "grounding") == []
    incomplete = _record([("ship", [0, 0, 5, 5])], meta={"skipped_objects": 1})
    (count,) = _by_task(incomplete, "counting")
    assert count.messages[1].content == "There is at least 1 ship in the image."
    assert _by_task(incomplete, "grounding") == []  # a list of "every ship" would be short


def test_same_seed_same_instructions_other_seed_other_phrasing() -> None:
    many = _record([(f"class-{i}", [i, i, 5, 5]) for i in range(12)])
    first = list(rule_instructions(many, ["counting"], seed=1))
    assert first == list(rule_instructions(many, ["counting"], seed=1))
    other = list(rule_instructions(many, ["counting"], seed=2))
    assert [i.messages[0].content for i in first] != [i.messages[0].content for i in other]


def test_pools_have_enough_distinct_phrasings() -> None:
    for task in RULE_TASKS:
        pool = load_pool(task)
        assert len(set(pool.questions)) >= MIN_PHRASINGS
        assert pool.template.startswith(task + "/v")


@pytest.mark.parametrize(
    ("category", "singular", "plural"),
    [
        ("small-vehicle", "small vehicle", "small vehicles"),
        ("bus", "bus", "buses"),
        ("Expressway-Service-area", "expressway service area", "expressway service areas"),
        ("storagetank", "storage tank", "storage tanks"),
        ("T junction", "t junction", "t junctions"),
        ("factory", "factory", "factories"),
        ("Small_Vehicle", "small vehicle", "small vehicles"),
    ],
)
def test_category_names_read_naturally(category: str, singular: str, plural: str) -> None:
    assert category_name(category) == (category_name(category).__class__(singular, plural))


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="unknown task 'countin'"):
        parse_tasks("counting,countin")


def test_generate_instructions_streams_a_file(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    write_jsonl(records, [SCENE, _record([], meta={"labelled": False})])
    summary = generate_instructions(records, tmp_path / "out.jsonl", tasks="counting")
    assert summary.records == 2 and summary.records_without_instructions == 1
    assert summary.per_task == {"counting": 2}
    assert len(list(read_jsonl(tmp_path / "out.jsonl", Instruction))) == 2


def test_phrasing_choice_does_not_depend_on_global_random_state() -> None:
    random.seed(123)
    first = list(rule_instructions(SCENE, RULE_TASKS))
    random.seed(456)
    assert first == list(rule_instructions(SCENE, RULE_TASKS))


def test_rule_instructions_are_valid_models() -> None:
    """Rules build instructions without validation: re-validating them must change nothing."""
    for instruction in rule_instructions(SCENE, RULE_TASKS):
        assert Instruction.model_validate(instruction.model_dump()) == instruction


@pytest.mark.parametrize(
    "meta",
    [
        {"labelled": False},
        {"skipped_objects": 2},
        {"objects_exhaustive": False},
        {"crowd_regions": 1},
    ],
)
def test_no_exact_counts_from_incomplete_labels(meta: dict) -> None:
    record = _record([("ship", [0, 0, 5, 5]), ("ship", [9, 9, 5, 5])], meta=meta)
    answers = [i.messages[1].content for i in _by_task(record, "counting")]
    assert all("at least" in answer for answer in answers)
    assert _by_task(record, "grounding") == []


def _tricky_record() -> Record:
    """Text that JSON must escape, ids shared by two objects, numbers of every magnitude."""
    objects = [
        Object(id=0, category="ship", bbox=[0.0001, 1e-05, 10, 10]),
        Object(id=1, category='big "quoted" ship', bbox=[20, 20, 4, 2]),
        Object(
            id=1, category="ship", bbox=[50.25, 50.5, 1e-7, 10], polygon=[[1, 2], [3, 4], [5, 1]]
        ),
        Object(
            id=3,
            category="naïve-café",
            bbox=[80, 10, 10, 10],
            polygon=[[80, 10], [90, 10], [90, 20], [80, 20]],
        ),
    ]
    return _record(
        [],
        captions=['Ships at a "quay"\\n\tof\x01 Montréal — 港口 🚢.'],
        qa=[{"question": "Is there\na ship?", "answer": "yes", "type": "presence"}],
        label="harbour",
    ).model_copy(update={"objects": objects})


@pytest.mark.parametrize("record", [SCENE, _tricky_record()], ids=["scene", "tricky"])
def test_instruction_lines_are_the_model_dumps(record: Record) -> None:
    """The instruct stage writes drafts straight to JSON: byte for byte the model's dump."""
    lines = RecordLines(record)
    drafts = list(rule_drafts(record, RULE_TASKS, seed=3))
    assert {"brief_caption", "grounding", "detailed_description"} <= {d.task for d in drafts}
    assert record is SCENE or any(d.source_extra for d in drafts)  # vqa's qa_type
    for draft in drafts:
        assert lines.line(draft) == make_instruction(record, draft).model_dump_json() + "\n"


def test_generated_file_holds_the_rule_instructions(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    write_jsonl(records, [SCENE, _tricky_record()])
    generate_instructions(records, tmp_path / "out.jsonl", seed=5)
    context = RuleContext(vocabulary=dataset_vocabulary(records))
    expected = [
        i.model_dump_json() + "\n"
        for record in read_jsonl(records, Record)
        for i in rule_instructions(record, RULE_TASKS, 5, context)
    ]
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines(True) == expected


def test_task_random_is_splitmix64() -> None:
    """The published SplitMix64 sequence from state 0, so a seed means the same on any Python."""
    rng = TaskRandom("any")
    rng._state = 0
    assert [rng.next64() for _ in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_task_random_draws() -> None:
    """Same text, same draws; the draws are what each method promises, spread evenly."""
    first, again, other = TaskRandom("0|a/b#1|counting"), TaskRandom("0|a/b#1|counting"), None
    assert [first.next64() for _ in range(5)] == [again.next64() for _ in range(5)]
    other = TaskRandom("0|a/b#1|grounding")
    assert [other.next64() for _ in range(5)] != [first.next64() for _ in range(5)]
    rng = TaskRandom("7|x|relations")
    items = list(range(45))
    rng.shuffle(items)
    assert sorted(items) == list(range(45)) and items != list(range(45))
    picked = rng.sample(range(100), 7)
    assert len(set(picked)) == 7 and all(0 <= p < 100 for p in picked)
    assert sorted(rng.sample("abc", 3)) == ["a", "b", "c"]
    counts = Counter(rng.choice("abcdefgh") for _ in range(8000))
    assert set(counts) == set("abcdefgh") and all(850 < n < 1150 for n in counts.values())
    assert {rng.randint(1, 2) for _ in range(100)} == {1, 2}
    assert all(0.0 <= rng.random() < 1.0 for _ in range(1000))
    with pytest.raises(ValueError):
        rng.sample([1, 2], 3)
    with pytest.raises(IndexError):
        rng.choice([])


def test_a_shard_asks_about_the_classes_of_its_whole_input(tmp_path: Path) -> None:
    """Negative questions name classes of the whole input, so shards add up to the whole run.

    The dataset has no registered converter: its vocabulary is only what the input holds, and
    each record here holds a class no other record has.
    """
    from typer.testing import CliRunner

    from rsgpt4v.cli import app

    classes = ["crane", "silo", "pier", "kiln", "mast", "weir"]
    records = [
        Record(
            id=f"mine/train/{n}",
            dataset="mine",
            split="train",
            image=ImageInfo(path=f"{n}.png", width=100, height=100),
            objects=[Object(id=0, category=name, bbox=[10, 10, 20, 20])],
        )
        for n, name in enumerate(classes)
    ]
    write_jsonl(tmp_path / "records.jsonl", records)
    runner = CliRunner()

    def instruct(out: Path, *extra: str) -> None:
        args = ["instruct", str(tmp_path / "records.jsonl"), "-o", str(out), "--tasks", "presence"]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output

    instruct(tmp_path / "whole.jsonl")
    parts = [tmp_path / f"part{i}.jsonl" for i in range(3)]
    for i, part in enumerate(parts):
        instruct(part, "--shard", f"{i}/3")
    merged = tmp_path / "merged.jsonl"
    args = ["merge-shards", *map(str, parts), "-o", str(merged)]
    result = runner.invoke(app, [*args, "--records", str(tmp_path / "records.jsonl")])
    assert result.exit_code == 0, result.output
    whole = (tmp_path / "whole.jsonl").read_text(encoding="utf-8")
    assert merged.read_text(encoding="utf-8") == whole
    first = [line for line in whole.splitlines() if '"record_id":"mine/train/0"' in line]
    assert any(name in line for line in first for name in classes[1:])  # others' classes asked


# Answer keys kept to one form on purpose: a multiple-choice answer is scored by its leading
# letter (rsgpt4v.evaluate), and the relation joiner "{horizontal} and {vertical}" has only two
# orders.
ONE_FORM = {("classification", "choice"), ("relations", "both_sides")}


@pytest.mark.parametrize(
    "task",
    ["counting", "grounding", "presence", "region_identification", "geographic", "relations",
     "local_attributes", "region_caption", "classification", "detailed_description",
     "multi_turn"],
)  # fmt: skip
def test_every_answer_key_has_several_differently_worded_variants(task: str) -> None:
    for key, value in load_pool(task).answers.items():
        if (task, key) in ONE_FORM:
            continue
        assert isinstance(value, list), (task, key)
        minimum = 2 if task == "local_attributes" and key.endswith("subject") else 3
        assert len(set(value)) >= minimum, (task, key)
        wordings = {re.sub(r"\{\w+\}", "", v).lower() for v in value}
        assert len(wordings) == len(value), (task, key)  # not the same words around new values
