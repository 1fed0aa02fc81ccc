from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.rsivqa import RsivqaLine, parse_rsivqa_line, split_of
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def rsivqa_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("rsivqa").make_fixture(tmp_path_factory.mktemp("rsivqa"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("rsivqa")(root, **kwargs).records()}


def test_fixture_uses_lf_and_both_separators(rsivqa_root: Path) -> None:
    ucm = (rsivqa_root / "RSIVQA/UCM/ucm_vqa.txt").read_bytes()
    dota = (rsivqa_root / "RSIVQA/DOTA/dota_val_vqa2.txt").read_bytes()
    assert b"\r" not in ucm and ucm.endswith(b"\n")
    assert ucm.startswith(b"1.tif:what") and dota.startswith(b"P0003: does")


def test_one_record_per_image_with_the_qa_of_every_file(rsivqa_root: Path) -> None:
    records = _records(rsivqa_root / "RSIVQA")
    assert sorted(records) == [
        "rsivqa/all/AID/00433",
        "rsivqa/all/AID/airport_1",
        "rsivqa/all/Sydney/1",
        "rsivqa/all/UCM/1",
        "rsivqa/all/UCM/10",
        "rsivqa/all/UCM/2",
        "rsivqa/train/DOTA/P0000",
        "rsivqa/val/DOTA/P0003",
        "rsivqa/val/HRRSD/00001",
    ]
    ucm = records["rsivqa/all/UCM/1"]
    assert ucm.image.path == "UCM/images/1.tif" and ucm.image.width == 32
    assert [(q.question, q.answer, q.type) for q in ucm.qa] == [
        ("How many trees in the picture?", "one", None),
        ("What is the location of the trees in this picture?", "top left corner", None),
        ("what is the theme of this picture?", "farmland", None),
    ]  # files in name order: ucm_res.txt, then ucm_vqa.txt
    assert ucm.meta["qa_files"] == ["UCM/ucm_res.txt", "UCM/ucm_vqa.txt"]
    assert ucm.labelled is False and ucm.objects == []
    assert records["rsivqa/all/Sydney/1"].image.path == "Sydney/images/1.tif"  # same stem


def test_missing_object_question_is_kept_as_written(rsivqa_root: Path) -> None:
    record = _records(rsivqa_root / "RSIVQA")["rsivqa/all/UCM/10"]
    assert [(q.question, q.answer) for q in record.qa] == [
        ("How many  in the picture?", "zero"),
        ("What is the location of the  in this picture?", "i cannot see it"),
    ]


def test_colon_space_separator_and_keys_without_extension(rsivqa_root: Path) -> None:
    records = _records(rsivqa_root / "RSIVQA")
    dota = records["rsivqa/train/DOTA/P0000"]
    assert dota.image.path == "DOTA/images/P0000.png" and dota.split == "train"
    assert dota.qa[0].question == "how many planes are there in this picture?"
    assert dota.qa[0].answer == "21"
    assert records["rsivqa/val/HRRSD/00001"].image.path == "HRRSD/images/00001.jpg"


def test_split_filter(rsivqa_root: Path) -> None:
    assert sorted(_records(rsivqa_root / "RSIVQA", split="val")) == [
        "rsivqa/val/DOTA/P0003",
        "rsivqa/val/HRRSD/00001",
    ]
    with pytest.raises(InputError, match="unknown rsivqa split 'dev'"):
        _records(rsivqa_root / "RSIVQA", split="dev")


def test_malformed_line_names_file_and_line(rsivqa_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        _records(rsivqa_root / "RSIVQA-bad")
    error = caught.value
    assert error.file.endswith("UCM/ucm_vqa.txt") and error.line == 2
    assert error.value == "1.tif:what is the theme of this picture farmland"
    assert "exactly one '?'" in str(error)


def test_skip_bad_keeps_the_good_lines_and_reports_the_rest(rsivqa_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(rsivqa_root / "RSIVQA-bad", log=log)
    assert [q.answer for q in records["rsivqa/all/UCM/1"].qa] == ["farmland", "two"]
    assert [(p.line, p.reason) for p in log.problems] == [
        (2, "not an RSIVQA line: expected exactly one '?' between question and answer, found 0"),
        (3, "not an RSIVQA line: expected exactly one '?' between question and answer, found 2"),
        (4, "not an RSIVQA line: empty answer"),
        (6, "image not found; its 1 QA pairs are skipped"),
    ]
    assert log.problems[-1].value == "UCM/images/7.tif"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1.tif:is it?yes", RsivqaLine("1.tif", "is it?", "yes")),
        ("P0000: how many?21", RsivqaLine("P0000", "how many?", "21")),
        (
            "1.tif:How many  in the picture?zero",
            RsivqaLine("1.tif", "How many  in the picture?", "zero"),
        ),
    ],
)
def test_parse_line(line: str, expected: RsivqaLine) -> None:
    assert parse_rsivqa_line(line) == expected


@pytest.mark.parametrize("line", ["no colon?yes", ":q?a", "1.tif:q", "1.tif:?a", "1.tif:q? "])
def test_parse_line_rejects(line: str) -> None:
    with pytest.raises(ValueError):
        parse_rsivqa_line(line)


def test_split_of_file_names() -> None:
    assert [
        split_of(Path(n)) for n in ("dota_train_vqa2.txt", "opt_val_vqa.txt", "ucm_res.txt")
    ] == [
        "train",
        "val",
        "all",
    ]


def test_cli_convert(rsivqa_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app, ["convert", "rsivqa", str(rsivqa_root / "RSIVQA"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("9 records (9 without object labels), 0 objects")
    assert "QA pairs: 14" in result.output
    assert len(list(read_jsonl(out, Record))) == 9
