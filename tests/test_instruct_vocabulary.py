"""The vocabulary pass: skipping lines by their text gives what parsing every line gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsgpt4v.errors import InputError
from rsgpt4v.vocabulary import _RecordClasses, dataset_vocabulary


def _line(dataset: str, classes: list[str], **extra: object) -> dict:
    objects = [{"id": i, "category": c, "bbox": [0, 0, 1, 1]} for i, c in enumerate(classes)]
    return {"id": "x", "dataset": dataset, "image": {}, "objects": objects, **extra}


def _parsed_every_line(path: Path) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = _RecordClasses.model_validate_json(line)
            seen.setdefault(record.dataset, set()).update(o.category for o in record.objects)
    return seen


def test_vocabulary_equals_parsing_every_line(tmp_path: Path) -> None:
    lines = [
        json.dumps(_line("toy", ["ship", "plane"])),
        json.dumps(_line("toy", ["ship"])),  # nothing new: skipped by its text
        json.dumps(_line("toy", ["ship"], meta={"note": {"category": "not-a-class"}})),
        json.dumps(_line("toy", ["héliport"]), ensure_ascii=True),  # escaped: parsed
        json.dumps(_line("toy", ["harbor"]), indent=1).replace("\n", ""),  # spaced: parsed
        json.dumps(_line("toy", ['quote "q"'])),
        json.dumps(_line("toy", ["ship"], meta={"dataset": "other"})),  # two dataset keys
        json.dumps(_line("toy", ["car"], captions=['"category":"boat"'])),  # inside a string
        "",
        json.dumps(_line("other", [])),  # a new dataset without objects
        json.dumps(_line("toy", ["plane"])),
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocabulary = dataset_vocabulary(path)
    expected = _parsed_every_line(path)
    assert list(vocabulary) == list(expected) == ["toy", "other"]
    assert vocabulary == {name: tuple(sorted(found)) for name, found in expected.items()}


def test_a_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(_line("toy", ["ship"])) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"records.jsonl:2: not valid JSON"):
        dataset_vocabulary(path)
