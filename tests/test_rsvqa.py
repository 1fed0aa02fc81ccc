from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.rsvqa import parse_resolution
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def rsvqa_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("rsvqa").make_fixture(tmp_path_factory.mktemp("rsvqa"))


def _records(root: Path, name: str, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter(name)(root, **kwargs).records()}


def test_lr_train_joins_the_three_files_per_image(rsvqa_root: Path) -> None:
    log = ProblemLog()
    records = _records(rsvqa_root / "RSVQA_LR", "rsvqa-lr", split="train", log=log)
    assert sorted(records) == ["rsvqa-lr/train/0", "rsvqa-lr/train/1"]
    first = records["rsvqa-lr/train/0"]
    assert first.image.path == "Images_LR/0.tif"
    assert (first.image.width, first.image.height, first.image.bands) == (32, 32, 3)
    assert [(q.question, q.answer, q.type) for q in first.qa] == [
        ("Is there a building?", "yes", "presence"),
        ("Is it a rural or an urban area", "rural", "rural_urban"),  # no "?", as written
        ("How many buildings are there in the image?", "12", "count"),
    ]
    assert first.objects == [] and first.labelled is False  # QA only, no object labels
    assert first.image.gsd == 10.0 and first.meta["res_x"] == "10m"
    assert first.meta["sensor"] == "Sentinel-2" and first.meta["image_id"] == 0
    assert "questions_ids" not in first.meta and "active" not in first.meta


def test_placeholders_are_skipped_and_counted(rsvqa_root: Path) -> None:
    log = ProblemLog()
    _records(rsvqa_root / "RSVQA_LR", "rsvqa-lr", split="train", log=log)
    assert log.counts["inactive RSVQA entries skipped"] == 9 + 8 + 8
    assert log.counts["RSVQA images without questions"] == 1  # image 5
    assert log.counts["QA pairs"] == 4 and log.problems == []


def test_numeric_answer_becomes_a_string_and_splits_are_separate(rsvqa_root: Path) -> None:
    records = _records(rsvqa_root / "RSVQA_LR", "rsvqa-lr", split="test")
    assert sorted(records) == ["rsvqa-lr/test/2", "rsvqa-lr/test/3"]
    assert records["rsvqa-lr/test/3"].qa[0].answer == "3"
    assert {r.split for r in records.values()} == {"test"}


def test_hr_area_answer_and_both_test_sets(rsvqa_root: Path) -> None:
    records = _records(rsvqa_root / "RSVQA_HR", "rsvqa-hr")
    assert sorted(records) == ["rsvqa-hr/test/1", "rsvqa-hr/test_phili/2", "rsvqa-hr/train/0"]
    train = records["rsvqa-hr/train/0"]
    assert train.image.path == "Data/0.tif" and train.image.width == 64
    assert train.qa[0].answer == "1234m2" and train.qa[0].type == "area"
    assert train.image.gsd == pytest.approx(0.1524) and train.meta["res_x"] == ".1524m"
    phili = records["rsvqa-hr/test_phili/2"]
    assert phili.split == "test_phili" and phili.meta["sensor"] == "unknown"


def test_broken_split_raises_naming_file_and_entry(rsvqa_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("rsvqa-lr")(rsvqa_root / "RSVQA_LR", split="val").records())
    error = caught.value
    assert error.file.endswith("LR_split_val_questions.json")
    assert error.entry == "questions[7].img_id" and error.value == 9
    assert "--skip-bad" in str(error)


def test_skip_bad_reports_missing_image_with_its_qa(rsvqa_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    assert _records(rsvqa_root / "RSVQA_LR", "rsvqa-lr", split="val", log=log) == {}
    problems = [(p.reason, Path(p.file).name, p.entry) for p in log.problems]
    assert problems == [
        ("img_id names no active image", "LR_split_val_questions.json", "questions[7].img_id"),
        ("question has no text", "LR_split_val_questions.json", "questions[8].question"),
        (
            "image not found; its 1 QA pairs are skipped",
            "LR_split_val_images.json",
            "images[4]",
        ),
    ]
    assert log.problems[-1].value == "Images_LR/4.tif"


def test_malformed_json_file_is_rejected_with_its_line(tmp_path: Path) -> None:
    for kind in ("images", "questions", "answers"):
        (tmp_path / f"LR_split_train_{kind}.json").write_text(f'{{"{kind}": []}}')
    (tmp_path / "LR_split_train_answers.json").write_text('{"answers": [\n{"id": 0,}\n]}')
    log = ProblemLog(skip_bad=True)
    assert _records(tmp_path, "rsvqa-lr", log=log) == {}
    assert log.problems[0].line == 2 and "not valid JSON" in log.problems[0].reason


def test_second_answer_and_orphan_answer_are_reported(tmp_path: Path) -> None:
    load_fixture_module("rsvqa").make_lr(tmp_path)
    root = tmp_path / "RSVQA_LR"
    path = root / "LR_split_train_answers.json"
    answers = json.loads(path.read_text())
    answers["answers"][10] = {"id": 10, "question_id": 0, "answer": "no", "active": True}
    answers["answers"][11] = {"id": 11, "question_id": 99, "answer": "yes", "active": True}
    path.write_text(json.dumps(answers))
    questions_path = root / "LR_split_train_questions.json"
    questions = json.loads(questions_path.read_text())
    questions["questions"][0]["answers_ids"] = [0, 10]
    questions_path.write_text(json.dumps(questions))
    log = ProblemLog(skip_bad=True)
    records = _records(root, "rsvqa-lr", split="train", log=log)
    assert records["rsvqa-lr/train/0"].qa[0].answer == "yes"  # the first answer is kept
    assert [(p.entry, p.value) for p in log.problems] == [
        ("answers[10]", "no"),
        ("answers[11]", "yes"),
    ]


def test_unknown_split_and_missing_files_are_clear_errors(rsvqa_root: Path) -> None:
    with pytest.raises(InputError, match="unknown rsvqa-lr split 'test_phili'"):
        list(get_converter("rsvqa-lr")(rsvqa_root / "RSVQA_LR", split="test_phili").records())
    with pytest.raises(InputError, match="no RSVQA split files"):
        list(get_converter("rsvqa-hr")(rsvqa_root / "RSVQA_LR").records())
    with pytest.raises(InputError, match=r"missing its USGS_split_val_images\.json"):
        list(get_converter("rsvqa-hr")(rsvqa_root / "RSVQA_HR", split="val").records())


@pytest.mark.parametrize(
    ("text", "expected"),
    [(".1524m", 0.1524), ("10m", 10.0), ("10", 10.0), ("", None), ("n/a", None), (None, None)],
)
def test_parse_resolution(text: object, expected: float | None) -> None:
    assert parse_resolution(text) == expected


def test_cli_convert_with_skip_bad(rsvqa_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app, ["convert", "rsvqa-lr", str(rsvqa_root / "RSVQA_LR"), "-o", str(out), "--skip-bad"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("4 records (4 without object labels), 0 objects")
    assert "QA pairs: 6" in result.output and "inactive RSVQA entries skipped: 85" in result.output
    assert "3 rejected items" in result.output
    ids = [r.id for r in read_jsonl(out, Record)]
    assert ids == ["rsvqa-lr/train/0", "rsvqa-lr/train/1", "rsvqa-lr/test/2", "rsvqa-lr/test/3"]
