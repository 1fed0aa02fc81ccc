from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def floodnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("floodnet-vqa").make_fixture(tmp_path_factory.mktemp("floodnet"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("floodnet-vqa")(root, **kwargs).records()}


def test_train_questions_grouped_per_image(floodnet_root: Path) -> None:
    records = _records(floodnet_root / "FloodNet", split="train")
    assert sorted(records) == ["floodnet-vqa/train/10165", "floodnet-vqa/train/10166"]
    first = records["floodnet-vqa/train/10165"]
    assert first.image.path == "Images/Train_Image/10165.jpg"  # Image_ID says 10165.JPG
    assert (first.image.width, first.image.height) == (64, 48)
    assert [(q.question, q.answer, q.type) for q in first.qa] == [
        ("What is the overall condition of the given image?", "flooded", "Condition_Recognition"),
        ("How many buildings are in the image?", "3", "Simple_Counting"),  # a JSON number
    ]
    assert first.meta["image_id"] == "10165.JPG" and first.labelled is False
    assert "unanswered_questions" not in first.meta
    second = records["floodnet-vqa/train/10166"]
    assert [(q.answer, q.type) for q in second.qa] == [("No", "Yes_No"), ("2", "Complex_Counting")]


def test_file_names_with_spaces_and_underscores_are_found(floodnet_root: Path) -> None:
    records = _records(floodnet_root / "FloodNet")
    assert sorted({r.split for r in records.values()}) == ["test", "train", "val"]
    assert records["floodnet-vqa/val/10170"].qa[0].answer == "non flooded"


def test_test_questions_are_never_qa_pairs_with_empty_answers(floodnet_root: Path) -> None:
    log = ProblemLog()
    records = _records(floodnet_root / "FloodNet", split="test", log=log)
    assert sorted(records) == ["floodnet-vqa/test/10200", "floodnet-vqa/test/10201"]
    record = records["floodnet-vqa/test/10200"]
    assert record.qa == []
    assert record.meta["unanswered_questions"] == [
        {
            "question": "What is the overall condition of the given image?",
            "type": "Condition_Recognition",
        },
        {"question": "How many buildings are in the image?", "type": "Simple_Counting"},
    ]
    assert log.counts["unanswered questions (no Ground_Truth)"] == 3
    assert "QA pairs" not in log.counts


def test_float_answer_is_kept_as_written(floodnet_root: Path, tmp_path: Path) -> None:
    load_fixture_module("floodnet-vqa").make_clean(tmp_path)
    path = tmp_path / "FloodNet/Questions/Valid Question.json"
    path.write_text(path.read_text().replace('"non flooded"', "2.0"))
    record = _records(tmp_path / "FloodNet", split="val")["floodnet-vqa/val/10170"]
    assert record.qa[0].answer == "2.0"


def test_bad_entry_raises_naming_file_and_entry(floodnet_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        _records(floodnet_root / "FloodNet-bad")
    error = caught.value
    assert error.file.endswith("Questions/Training Question.json")
    assert error.entry == '["1"].Ground_Truth' and "--skip-bad" in str(error)


def test_skip_bad_reports_missing_answer_image_and_bad_type(floodnet_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(floodnet_root / "FloodNet-bad", log=log)
    assert [q.answer for q in records["floodnet-vqa/train/10165"].qa] == ["flooded"]
    assert [(p.entry, p.value) for p in log.problems] == [
        ('["1"].Ground_Truth', None),
        ('["3"].Ground_Truth', "True"),
        ('["2"].Image_ID', "99999.JPG"),
    ]
    assert log.problems[2].reason == (
        "image not found in Images/Train_Image; its 1 questions are skipped"
    )


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "Questions").mkdir()
    (tmp_path / "Questions/Test_Question.json").write_text('{"0": {\n"Image_ID": }\n}')
    log = ProblemLog(skip_bad=True)
    assert _records(tmp_path, log=log) == {}
    assert log.problems[0].line == 2 and "not valid JSON" in log.problems[0].reason


def test_unknown_split_and_missing_files(floodnet_root: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown floodnet-vqa split 'dev'"):
        _records(floodnet_root / "FloodNet", split="dev")
    with pytest.raises(InputError, match="no question file found"):
        _records(tmp_path)


def test_cli_convert(floodnet_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app, ["convert", "floodnet-vqa", str(floodnet_root / "FloodNet"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("5 records (5 without object labels), 0 objects")
    assert "QA pairs: 5" in result.output
    assert "unanswered questions (no Ground_Truth): 3" in result.output
    lines = [json.loads(line) for line in out.open()]
    assert all(qa["answer"] for line in lines for qa in line["qa"])
    assert [r.split for r in read_jsonl(out, Record)] == ["train", "train", "val", "test", "test"]
