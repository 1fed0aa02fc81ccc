from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.fair1m import FAIR1M_CLASSES, parse_fair1m_points
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def fair1m_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("fair1m").make_fixture(tmp_path_factory.mktemp("fair1m"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("fair1m")(root, **kwargs).records()}


def test_train_parts_keep_their_folder_in_the_id(fair1m_root: Path) -> None:
    records = _records(fair1m_root, split="train")
    assert sorted(records) == [
        "fair1m/train/part1/0",
        "fair1m/train/part1/1",
        "fair1m/train/part2/0",
    ]
    assert records["fair1m/train/part2/0"].image.path == "train/part2/images/0.tif"
    assert records["fair1m/train/part2/0"].meta["label_file"] == "train/part2/labelXmls/0.xml"


def test_closing_point_dropped_and_classes_kept_as_written(fair1m_root: Path) -> None:
    record = _records(fair1m_root, split="train")["fair1m/train/part1/0"]
    assert [o.category for o in record.objects] == [
        "Small Car",
        "Boeing737",
        "Dry Cargo Ship",
        "other-vehicle",
    ]
    car, plane = record.objects[0], record.objects[1]
    assert car.polygon == [[10, 5], [20, 5], [20, 11], [10, 11]]
    assert car.bbox == [10, 5, 10, 6]
    assert plane.polygon == [[30.5, 10.25], [50.5, 12.25], [48.5, 30.25], [28.5, 28.25]]
    assert plane.bbox == [28.5, 10.25, 22.0, 20.0]
    assert record.meta == {
        "labelled": True,
        "label_file": "train/part1/labelXml/0.xml",
        "origin": "GF2/GF3",
    }
    assert {o.category for o in record.objects} <= set(FAIR1M_CLASSES)


def test_box_clipped_polygon_kept_and_spaced_points_read(fair1m_root: Path) -> None:
    record = _records(fair1m_root, split="train")["fair1m/train/part1/0"]
    ship, vehicle = record.objects[2], record.objects[3]
    assert ship.bbox == [55, 30, 9, 10] and max(x for x, _ in ship.polygon) == 70
    assert vehicle.polygon == [[2, 40], [8, 40], [8, 46], [2, 46]]


def test_four_band_tiff_with_empty_objects(fair1m_root: Path) -> None:
    record = _records(fair1m_root, split="train")["fair1m/train/part1/1"]
    assert record.image.bands == 4 and record.objects == [] and record.labelled


def test_test_split_is_unlabelled(fair1m_root: Path) -> None:
    record = _records(fair1m_root, split="test")["fair1m/test/4"]
    assert record.labelled is False and record.objects == []


def test_bad_object_stops_the_run_naming_file_and_element(fair1m_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("fair1m")(fair1m_root, split="validation").records())
    error = caught.value
    assert error.file.endswith("validation/labelXml/2.xml")
    assert error.entry == "objects/object[2]" and "12.0,abc" in str(error)


def test_skip_bad_lists_every_problem(fair1m_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(fair1m_root, split="validation", log=log)
    assert list(records) == ["fair1m/validation/2"]  # 3.xml is not well-formed: no record
    record = records["fair1m/validation/2"]
    assert [o.category for o in record.objects] == ["Bus"]
    assert record.meta["skipped_objects"] == 2
    found = [(Path(p.file).name, p.entry, p.line) for p in log.problems]
    assert found == [
        ("2.xml", "objects/object[2]", None),
        ("2.xml", "objects/object[3]", None),
        ("3.xml", None, 4),
    ]
    assert "possibleresult/name" in log.problems[1].reason


def test_single_unpacked_part_works_as_a_flat_layout(fair1m_root: Path) -> None:
    records = _records(fair1m_root / "train" / "part1", split="train")
    assert sorted(records) == ["fair1m/train/0", "fair1m/train/1"]
    assert records["fair1m/train/0"].image.path == "images/0.tif"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["0,0", "4,0", "4,4", "0,4", "0,0"], [[0, 0], [4, 0], [4, 4], [0, 4]]),
        (["0, 0", "4, 0", "4, 4", "0, 4"], [[0, 0], [4, 0], [4, 4], [0, 4]]),
        (["0,0", "4,0", "4,4"], [[0, 0], [4, 0], [4, 4]]),
    ],
)
def test_parse_points(texts: list[str], expected: list[list[float]]) -> None:
    assert parse_fair1m_points(texts) == expected


@pytest.mark.parametrize("texts", [["0,0", "4,0", "0,0"], ["0,0,1", "4,0", "4,4"], ["nan,0"] * 4])
def test_parse_points_refuses_unusable_objects(texts: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_fair1m_points(texts)


def test_cli_convert(fair1m_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app, ["convert", "fair1m", str(fair1m_root), "-o", str(out), "--skip-bad"]
    )
    assert result.exit_code == 0, result.output
    assert "5 records (1 without object labels), 6 objects in 6 classes" in result.output
    assert len(list(read_jsonl(out, Record))) == 5
    rejects = [json.loads(line) for line in (tmp_path / "records.jsonl.rejects.jsonl").open()]
    assert [r["entry"] for r in rejects] == ["objects/object[2]", "objects/object[3]", None]
