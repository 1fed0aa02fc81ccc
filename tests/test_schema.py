from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsgpt4v.errors import InputError
from rsgpt4v.schema import (
    ImageInfo,
    Instruction,
    Message,
    Object,
    Record,
    Region,
    Source,
    read_jsonl,
    trusted_object,
    write_jsonl,
)

DESIGN_EXAMPLE = {
    "id": "dota-v1.0/train/P0706",
    "dataset": "dota-v1.0",
    "split": "train",
    "image": {
        "path": "images/P0706.png",
        "width": 1111,
        "height": 1182,
        "bands": 3,
        "gsd": 0.2556,
        "crs": None,
        "transform": None,
        "parent": None,
        "window": None,
    },
    "objects": [
        {
            "id": 0,
            "category": "ship",
            "bbox": [1054.0, 1011.0, 57.0, 51.0],
            "polygon": [[1054, 1028], [1063, 1011], [1111, 1040], [1112, 1062]],
            "difficult": False,
            "attributes": {},
        }
    ],
    "captions": [],
    "qa": [],
    "label": None,
    "meta": {"imagesource": "GoogleEarth"},
}


def _instruction() -> Instruction:
    return Instruction(
        id="r#grounding-0",
        record_id="r",
        image="images/a.png",
        image_size=[100, 50],
        task="grounding",
        source=Source(generator="rules", template="grounding/v1"),
        messages=[
            Message(role="user", content="<image>\nWhere are the ships?"),
            Message(role="assistant", content="There are 2 ships: <ref:0> and <ref:3>."),
        ],
        regions={"0": Region(bbox=[1, 2, 3, 4]), "3": Region(bbox=[5, 6, 7, 8], polygon=None)},
    )


def test_design_example_round_trips(tmp_path: Path) -> None:
    record = Record.model_validate(DESIGN_EXAMPLE)
    path = tmp_path / "records.jsonl"
    assert write_jsonl(path, [record, record]) == 2
    back = list(read_jsonl(path, Record))
    assert back == [record, record]
    assert json.loads(path.read_text().splitlines()[0]) == DESIGN_EXAMPLE


def test_instruction_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "instructions.jsonl"
    write_jsonl(path, [_instruction()])
    assert list(read_jsonl(path, Instruction)) == [_instruction()]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n" + json.dumps(DESIGN_EXAMPLE) + "\n\n")
    assert len(list(read_jsonl(path, Record))) == 1


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(DESIGN_EXAMPLE) + "\n" + '{"id": "x", \n')
    records = read_jsonl(path, Record)
    assert next(records).id == DESIGN_EXAMPLE["id"]  # streaming: the first line is fine
    with pytest.raises(InputError) as caught:
        next(records)
    assert caught.value.line == 2
    assert f"{path}:2" in str(caught.value) and "not valid JSON" in str(caught.value)


def test_invalid_record_names_the_field(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(DESIGN_EXAMPLE))
    bad["objects"][0]["bbox"] = [1, 2, -3, 4]
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(DESIGN_EXAMPLE) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(InputError, match=r"records.jsonl:2: not a valid Record: objects\.0\.bbox"):
        list(read_jsonl(path, Record))


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl", Record))


@pytest.mark.parametrize("path", ["/abs/a.png", "dir\\a.png", ""])
def test_image_path_must_be_relative_posix(path: str) -> None:
    with pytest.raises(ValueError):
        ImageInfo(path=path, width=1, height=1)


def test_object_needs_a_real_polygon() -> None:
    with pytest.raises(ValueError):
        Object(id=0, category="ship", bbox=[0, 0, 1, 1], polygon=[[0, 0], [1, 1]])


def test_failed_write_leaves_no_output(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"

    def items():
        yield Record.model_validate(DESIGN_EXAMPLE)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(path, items())
    assert not path.exists() and not list(tmp_path.iterdir())


def test_trusted_object_equals_a_validated_one() -> None:
    values = {
        "id": 3,
        "category": "ship",
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "polygon": [[1.0, 2.0], [4.0, 2.0], [4.0, 6.0]],
        "difficult": True,
        "attributes": {"truncated": True},
    }
    fast, checked = trusted_object(**values), Object(**values)
    assert fast == checked and fast.model_dump_json() == checked.model_dump_json()
    record = Record.model_validate({**DESIGN_EXAMPLE, "objects": [fast]})
    assert record.objects[0] is fast


def test_trusted_objects_have_their_own_fields_set_and_validate_assignment() -> None:
    values = {
        "id": 0,
        "category": "ship",
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "polygon": None,
        "difficult": False,
        "attributes": {},
    }
    first, second = trusted_object(**values), trusted_object(**values)
    assert first.model_fields_set == set(values)
    assert first.model_fields_set is not second.model_fields_set
    first.category = "harbor"
    assert (first.category, second.category) == ("harbor", "ship")
    with pytest.raises(ValueError):
        first.bbox = [0.0, 0.0, -1.0, 1.0]
