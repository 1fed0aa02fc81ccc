"""Imported LLaVA / ShareGPT datasets: boxes written as text in any style, matched by IoU."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsgpt4v.boxfmt import STYLES
from rsgpt4v.convert import convert_dataset
from rsgpt4v.export import export_instructions
from rsgpt4v.families import BoxConvention
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.validate.checks import CheckSettings
from rsgpt4v.validate.run import ValidationOptions, validate_instructions
from rsgpt4v.validate.text_boxes import detect_style, match_boxes, text_boxes
from rsgpt4v.validate.vocabulary import Vocabulary, _trie_pattern, parse_number


@pytest.fixture(scope="module")
def pipeline(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("import")
    records = convert_dataset(
        "dota", sample_root, out / "records.jsonl", split="train", captions=None
    ).output
    instructions = generate_instructions(
        records, out / "instructions.jsonl", tasks="counting,grounding,region_identification"
    ).output
    return {"root": sample_root, "records": records, "instructions": instructions, "out": out}


def _export(pipeline: dict[str, Path], fmt: str, boxes: str, name: str) -> Path:
    output = pipeline["out"] / name
    export_instructions(pipeline["instructions"], output, fmt=fmt, boxes=boxes)
    return output


def _validate(path: Path, pipeline: dict[str, Path], **checks):
    return validate_instructions(
        path,
        pipeline["records"],
        options=ValidationOptions(checks=CheckSettings(**checks), leakage=False),
    )


@pytest.mark.parametrize("style", STYLES)
def test_exported_llava_with_boxes_of_any_style_imports_clean(
    pipeline: dict[str, Path], style: str
) -> None:
    path = _export(pipeline, "llava", style, f"llava-{style}.json")
    summary = _validate(path, pipeline)
    assert summary.format == "llava"
    assert summary.rejected == 0, summary.reasons
    assert summary.kept == summary.instructions > 20


def test_exported_sharegpt_imports_clean(pipeline: dict[str, Path]) -> None:
    path = _export(pipeline, "sharegpt", "qwen2vl", "sharegpt.jsonl")
    summary = _validate(path, pipeline)
    assert summary.format == "sharegpt" and summary.rejected == 0


def test_mislocated_text_box_is_caught(pipeline: dict[str, Path]) -> None:
    path = _export(pipeline, "llava", "llava", "llava-moved.json")
    items = json.loads(path.read_text(encoding="utf-8"))
    moved = next(i for i in items if "#grounding" in i["id"])
    answer = moved["conversations"][1]["value"]
    first_box = answer[answer.index("[") : answer.index("]") + 1]
    moved["conversations"][1]["value"] = answer.replace(first_box, "[0.900, 0.900, 0.990, 0.990]")
    path.write_text(json.dumps(items), encoding="utf-8")
    summary = _validate(path, pipeline)
    rejects = [json.loads(line) for line in summary.rejects_file.read_text().splitlines()]
    assert [(r["reason"], r["entry"]) for r in rejects] == [("text_box_mismatch", moved["id"])]
    assert float(rejects[0]["value"]) < 0.5 and "IoU" in rejects[0]["message"]
    assert summary.kept == len(items) - 1


def test_unpadded_boxes_read_as_llavas_padded_square_are_mismatched(
    pipeline: dict[str, Path],
) -> None:
    output = pipeline["out"] / "llava-plain.json"
    export_instructions(pipeline["instructions"], output, boxes="llava", square_pad=False)
    assert _validate(output, pipeline, square_pad=False).rejected == 0
    # scene_01 is 320 x 224: plain boxes read in LLaVA's padded square miss vertically
    assert _validate(output, pipeline).reasons.get("text_box_mismatch", 0) > 0


def test_item_without_a_matching_record_or_conversation_is_rejected(
    pipeline: dict[str, Path], tmp_path: Path
) -> None:
    items = [
        {
            "id": "a",
            "image": "elsewhere/none.png",
            "conversations": [
                {"from": "human", "value": "<image>\nHi"},
                {"from": "gpt", "value": "Hello"},
            ],
        },
        {"id": "b", "image": "images/scene_00.tif", "conversations": []},
        {
            "id": "c",
            "image": "x/y/images/scene_00.tif",
            "conversations": [
                {"from": "human", "value": "How many planes?\n<image>"},
                {"from": "gpt", "value": "There are no planes."},
            ],
        },
    ]
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    summary = _validate(path, pipeline)
    lines = [json.loads(line) for line in summary.rejects_file.open()]
    assert {r["entry"]: r["reason"] for r in lines} == {"a": "unknown_record", "b": "schema"}
    assert [r["line"] for r in lines] == [None, None]  # a JSON array has items, not lines
    assert lines[0]["message"].startswith("a (item 0): no record with image")
    # found by its path suffix; <image> after the question is LLaVA's; scene_00 has no planes
    assert summary.kept == 1


def test_a_line_that_is_not_json_is_rejected_with_its_number(
    pipeline: dict[str, Path], tmp_path: Path
) -> None:
    good = {
        "id": "c",
        "image": "images/scene_00.tif",
        "conversations": [
            {"from": "human", "value": "<image>\nHow many planes?"},
            {"from": "gpt", "value": "There are no planes."},
        ],
    }
    path = tmp_path / "llava.jsonl"
    path.write_text(json.dumps(good) + "\n{oops\n" + json.dumps(good | {"id": "d"}) + "\n")
    summary = _validate(path, pipeline)
    rejects = [json.loads(line) for line in summary.rejects_file.open()]
    assert [(r["reason"], r["line"]) for r in rejects] == [("schema", 2), ("duplicate", 3)]
    assert "not valid JSON" in rejects[0]["message"]
    assert summary.kept == 1  # the lines around it are read: the first kept, the third a copy


@pytest.mark.parametrize("style", STYLES)
def test_text_box_style_is_detected_and_read_back(style: str) -> None:
    box = [30.0, 20.0, 90.0, 70.0]
    text = f"The ship is at {BoxConvention(style).view(200, 100).render(box)}, near the quay."
    assert detect_style(text) in ({style, "llava"} if style == "pixel" else {style})
    found_style, boxes = text_boxes(text, 200, 100, style=style)
    (match,) = match_boxes(boxes, found_style, [(7, [30, 20, 60, 50]), (8, [0, 0, 5, 5])], 200, 100)
    assert match.object_id == 7 and match.iou > 0.9


def test_number_words_and_synonyms_are_read() -> None:
    assert [parse_number(t) for t in ("9", "1,250", "nine", "twenty-one", "no")] == [
        9,
        1250,
        9,
        21,
        0,
    ]
    vocabulary = Vocabulary(["small-vehicle", "large-vehicle", "harbor", "plane"])
    found = [
        (m.count, sorted(m.categories))
        for m in vocabulary.mentions("Three cars, 12 vehicles, no harbours and 2 airplanes.")
    ]
    assert found == [
        (3, ["small-vehicle"]),
        (12, ["large-vehicle", "small-vehicle"]),
        (0, ["harbor"]),
        (2, ["plane"]),
    ]


def test_classes_named_by_numbers_are_not_category_words() -> None:
    vocabulary = Vocabulary(["7", "ship"])
    assert [m.words for m in vocabulary.mentions("About 7 m from 2 ships.")] == ["ships"]


def test_dataset_synonyms_apply_to_their_dataset_only() -> None:
    text = "There are 2 running tracks."
    (mention,) = Vocabulary(["playground"], "rsod").mentions(text)
    assert mention.categories == {"playground"} and mention.count == 2
    assert Vocabulary(["playground"], "other").mentions(text) == []


def test_a_dataset_class_keeps_its_own_name_over_group_words() -> None:
    dior = Vocabulary(["vehicle", "ship"])
    (mention,) = dior.mentions("4 vehicles")
    assert mention.categories == {"vehicle"}


_WORD = st.text(alphabet="abc", min_size=1, max_size=3)
_TERM = st.builds(" ".join, st.lists(_WORD, min_size=1, max_size=2))


@settings(max_examples=60, deadline=None)
@given(st.lists(_TERM, min_size=1, max_size=8), st.text(alphabet="abc -", max_size=30))
def test_prefix_trie_finds_what_a_longest_first_alternation_finds(terms, text) -> None:
    trie = re.compile(rf"\b(?:{_trie_pattern(terms)})\b")
    plain = "|".join(
        r"[\s-]+".join(map(re.escape, t.split())) for t in sorted(set(terms), key=len, reverse=True)
    )
    reference = re.compile(rf"\b(?:{plain})\b")
    assert [m.span() for m in trie.finditer(text)] == [m.span() for m in reference.finditer(text)]
