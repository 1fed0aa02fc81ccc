"""validate on both engines: the same clean file, rejects and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsgpt4v.instruct import generate_instructions
from rsgpt4v.problems import rejects_path
from tests.engines.conftest import invoke, text


def test_validate_on_ray_writes_the_local_clean_file_rejects_and_report(
    records: Path, tmp_path: Path
):
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    leaky = tmp_path / "records.jsonl"  # scene0000's image again, in the test split
    first = json.loads(records.read_text().splitlines()[0])
    leaky.write_text(records.read_text() + json.dumps(first | {"id": "x", "split": "test"}) + "\n")
    generate_instructions(records, tmp_path / "rules.jsonl")
    items = (tmp_path / "rules.jsonl").read_text().splitlines(keepends=True)
    copy = json.loads(items[0]) | {"id": "copy-of-first"}  # same conversation, units apart
    wrong = json.loads(items[1]) | {"image_size": [1, 1]}
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        items[0] + "".join(items[2:]) + json.dumps(copy) + "\n" + json.dumps(wrong) + "\nnot json\n"
    )
    options = ValidationOptions(image_root=records.parent)
    local = validate_instructions(
        mixed, leaky, tmp_path / "local.jsonl", report_dir=tmp_path / "a", options=options
    )
    on_ray = validate_instructions(
        mixed, leaky, tmp_path / "ray.jsonl", report_dir=tmp_path / "b", options=options,
        engine="ray", lines_per_unit=7,
    )  # fmt: skip
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    local_rejects = rejects_path(tmp_path / "local.jsonl").read_text()
    assert rejects_path(tmp_path / "ray.jsonl").read_text() == local_rejects
    assert set(local.reasons) == {"duplicate", "image_size", "schema", "leaked_image"}
    assert on_ray.leaked_records == local.leaked_records == 1
    assert on_ray.reasons == local.reasons and on_ray.kept == local.kept
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    for summary in (a, b):
        for key in ("output", "rejects_file", "report"):
            summary["run"].pop(key, None)
    assert a == b


def test_validate_command_takes_the_ray_engine(records: Path, tmp_path: Path):
    generate_instructions(records, tmp_path / "rules.jsonl")
    common = ("validate", tmp_path / "rules.jsonl", "--records", records)
    invoke(*common, "-o", tmp_path / "local.jsonl")
    out = invoke(*common, "-o", tmp_path / "ray.jsonl", "--engine", "ray")
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    assert "0 rejected" in out


def _with_text_boxes(records: Path, tmp_path: Path) -> Path:
    """Rule instructions, three of whose answers write boxes as text (one far off any label)."""
    generate_instructions(records, tmp_path / "rules.jsonl")
    items = [json.loads(line) for line in (tmp_path / "rules.jsonl").read_text().splitlines()]
    scene0 = [item for item in items if item["record_id"] == "scene0000"]
    boxes = ("[4, 4, 19, 11]", "[60, 60, 90, 90]", "[0.04, 0.04, 0.2, 0.12]")
    for item, box in zip(scene0, boxes, strict=False):  # scene0000 has more instructions
        item["messages"][-1]["content"] += f" One is at {box}."
    path = tmp_path / "boxes.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_validate_on_ray_reads_text_boxes_back_as_json_never_pickle(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Result shards sit on shared storage: nothing read from them may be unpickled."""
    import pickle

    from rsgpt4v.engines.stage import FanOut
    from rsgpt4v.validate.check_stage import CheckStage
    from rsgpt4v.validate.run import ValidationOptions

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used for the result shards")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "dumps", refuse)
    instructions = _with_text_boxes(records, tmp_path)
    report = tmp_path / "report"
    stage = CheckStage(
        instructions,
        records,
        tmp_path / "clean.jsonl",
        "instructions",
        ValidationOptions(samples=1000),
        report_dir=report,
        lines_per_unit=7,
    )
    units = stage.units(FanOut(workers=2, nodes=1, folder=tmp_path, share=lambda *_: None))
    assert len(units) > 1
    # what a shard holds: each row as a JSON line, read back as a new object
    rows = [json.loads(json.dumps(row)) for unit in units for row in stage.run_unit(unit, None)]
    boxes = [box for row in rows for box in row.get("boxes", [])]
    assert len(boxes) == 3 and all(isinstance(box, list) and len(box) == 8 for box in boxes)
    summary = stage.finish(_Rows(rows))
    data = (report / "data.js").read_text(encoding="utf-8")
    samples = json.loads(data.removeprefix("window.RSGPT4V_REPORT = ").rstrip().rstrip(";"))
    drawn = [box for sample in samples["samples"] for box in sample["text_boxes"]]
    assert len(drawn) == 3 and {box["object_id"] for box in drawn} == {0}
    assert summary.reasons == {"text_box_mismatch": 1}


class _Rows:
    """Rows as the Ray engine hands them to ``finish``: every unit's, in unit order."""

    def __init__(self, rows: list) -> None:
        self._rows = rows

    def rows(self):
        return iter(self._rows)

    @property
    def counts(self) -> list:
        return []


def test_validate_on_ray_draws_the_local_text_boxes(records: Path, tmp_path: Path):
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    instructions = _with_text_boxes(records, tmp_path)
    options = ValidationOptions(samples=1000)
    local = validate_instructions(
        instructions, records, tmp_path / "local.jsonl", report_dir=tmp_path / "a", options=options
    )
    on_ray = validate_instructions(
        instructions, records, tmp_path / "ray.jsonl", report_dir=tmp_path / "b", options=options,
        engine="ray", lines_per_unit=7,
    )  # fmt: skip
    assert local.reasons == on_ray.reasons == {"text_box_mismatch": 1}
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert text(rejects_path(tmp_path / "ray.jsonl")) == text(
        rejects_path(tmp_path / "local.jsonl")
    )
    assert text(tmp_path / "b" / "data.js") == text(tmp_path / "a" / "data.js")
    assert text(tmp_path / "a" / "data.js").count('"object_id"') == 3
