from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.hrrsd import HRRSD_CLASSES
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def hrrsd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("hrrsd").make_fixture(tmp_path_factory.mktemp("hrrsd")) / "OPT2017"


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("hrrsd")(root, **kwargs).records()}


def test_owner_name_is_never_a_class(hrrsd_root: Path) -> None:
    assert b"<name>snail_crowling</name>" in (hrrsd_root / "Annotations/00001.xml").read_bytes()
    records = _records(hrrsd_root, split="trainval")
    categories = [o.category for r in records.values() for o in r.objects]
    assert "snail_crowling" not in categories and len(categories) == 5


def test_class_names_with_spaces_are_kept(hrrsd_root: Path) -> None:
    records = _records(hrrsd_root, split="train")
    first, second = records["hrrsd/train/00001"], records["hrrsd/train/00002"]
    assert [o.category for o in first.objects] == ["airplane", "T junction"]
    assert [o.category for o in second.objects] == ["parking lot", "ground track field"]
    assert {"T junction", "ground track field"} <= set(HRRSD_CLASSES)
    assert first.image.path == "JPEGImages/00001.jpg"
    assert first.objects[0].bbox == [10, 12, 10, 18] and first.objects[0].polygon is None
    assert second.objects[1].bbox == [22, 10, 38, 38]  # ymax 70 in a 48-px image


def test_per_class_split_files_are_not_splits(hrrsd_root: Path) -> None:
    assert (hrrsd_root / "ImageSets/Main/T junction_train.txt").is_file()
    records = _records(hrrsd_root, log=ProblemLog(skip_bad=True))
    assert {r.split for r in records.values()} == {"train", "val", "test"}  # trainval skipped
    with pytest.raises(InputError, match=r"no split file T junction_train\.txt"):
        list(get_converter("hrrsd")(hrrsd_root, split="T junction_train").records())


def test_trainval_when_asked(hrrsd_root: Path) -> None:
    assert sorted(_records(hrrsd_root, split="trainval")) == [
        "hrrsd/trainval/00001",
        "hrrsd/trainval/00002",
        "hrrsd/trainval/00003",
    ]


def test_xml_that_is_not_well_formed_names_file_and_line(hrrsd_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("hrrsd")(hrrsd_root, split="test").records())
    error = caught.value
    assert error.file.endswith("Annotations/00004.xml") and error.line == 4
    assert "not well-formed XML" in str(error)


def test_skip_bad(hrrsd_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(hrrsd_root, split="test", log=log)
    assert list(records) == ["hrrsd/test/00005"]
    assert [o.category for o in records["hrrsd/test/00005"].objects] == ["vehicle"]
    assert records["hrrsd/test/00005"].meta["skipped_objects"] == 1
    assert [(Path(p.file).name, p.line, p.entry) for p in log.problems] == [
        ("00004.xml", 4, None),
        ("00005.xml", None, "/annotation/object[1]"),
    ]
    assert log.problems[1].reason == "missing <name> in <object>"


def test_cli_convert(hrrsd_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", "hrrsd", str(hrrsd_root), "-o", str(out), "--split", "train"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 records (0 without object labels), 4 objects in 4 classes" in result.output
    record = next(read_jsonl(out, Record))
    assert record.id == "hrrsd/train/00001" and record.objects[1].category == "T junction"
