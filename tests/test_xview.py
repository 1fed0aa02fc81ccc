from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.convert import convert_dataset
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.xview import XVIEW_CLASS_TABLE, parse_bounds, parse_type_id
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def xview_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("xview").make_fixture(tmp_path_factory.mktemp("xview"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("xview")(root, **kwargs).records()}


def test_class_table_is_the_official_one() -> None:
    assert len(XVIEW_CLASS_TABLE) == 60
    assert XVIEW_CLASS_TABLE[11] == "Fixed-wing Aircraft" and XVIEW_CLASS_TABLE[94] == "Tower"
    assert 75 not in XVIEW_CLASS_TABLE and 82 not in XVIEW_CLASS_TABLE


def test_one_record_per_existing_image(xview_root: Path) -> None:
    records = _records(xview_root)  # no --skip-bad: the known defects are not fatal
    assert sorted(records) == [
        "xview/train/100",
        "xview/train/101",
        "xview/train/102",
        "xview/val/200",
    ]
    assert records["xview/train/102"].objects == [] and records["xview/train/102"].labelled
    assert records["xview/val/200"].labelled is False
    assert records["xview/train/100"].image.path == "train_images/100.tif"


def test_boxes_classes_and_attributes(xview_root: Path) -> None:
    records = _records(xview_root, split="train")
    first, second = records["xview/train/100"], records["xview/train/101"]
    assert [(o.category, o.bbox) for o in first.objects] == [
        ("Building", [10, 5, 20, 10]),
        ("Small Car", [50, 30, 14, 14]),  # 50..70 clipped to the 64-px image
    ]
    assert first.objects[0].polygon is None
    assert first.objects[0].attributes == {"type_id": 73, "feature_id": 1}
    assert [o.category for o in second.objects] == ["Fixed-wing Aircraft", "Scraper/Tractor"]
    assert first.meta["catalog_ids"] == ["1040010028371A00"]  # cat_id is not a class


def test_known_defects_are_reported_counted_and_flagged(xview_root: Path) -> None:
    log = ProblemLog()  # not skip_bad: these must not raise
    records = _records(xview_root, split="train", log=log)
    assert log.problems == []
    assert log.counts == {
        "xView features with unknown type_id 75 skipped": 1,
        "xView features with unknown type_id 82 skipped": 1,
        "xView features with empty bounds skipped": 1,
        "xView images referenced but missing": 1,
        "xView features of missing images skipped": 2,
    }
    reasons = " | ".join(w.reason for w in log.warnings)
    assert "type_id 75" in reasons and "features[2].properties.type_id" in reasons
    assert "empty bounds_imcoords at features[3].properties" in reasons
    assert "image 1395.tif is referenced by 2 features" in reasons
    assert records["xview/train/100"].meta["skipped_objects"] == 2
    assert records["xview/train/101"].meta["skipped_objects"] == 1


def test_malformed_feature_stops_the_run_naming_its_json_path(xview_root: Path) -> None:
    converter = get_converter("xview")(xview_root, options={"geojson": "xView_bad.geojson"})
    with pytest.raises(InputError) as caught:
        list(converter.records())
    error = caught.value
    assert error.file.endswith("xView_bad.geojson")
    assert error.entry == "features[3].properties.image_id"  # found while grouping


def test_skip_bad_lists_malformed_features(xview_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(xview_root, split="train", log=log, options={"geojson": "xView_bad.geojson"})
    assert [(p.entry, p.value) for p in log.problems] == [
        ("features[3].properties.image_id", None),
        ("features[1].properties.bounds_imcoords", "1,2,3"),
        ("features[2].properties.type_id", "seventy"),
    ]
    assert [o.category for o in records["xview/train/100"].objects] == ["Building"]
    assert records["xview/train/101"].meta == {
        "labelled": True,
        "label_file": "xView_bad.geojson",
        "skipped_objects": 1,
        "catalog_ids": ["1040010028371A00"],
    }


def test_val_split_alone_needs_no_labels(xview_root: Path, tmp_path: Path) -> None:
    assert list(_records(xview_root, split="val")) == ["xview/val/200"]
    with pytest.raises(InputError, match="unknown xView split 'test'"):
        get_converter("xview")(xview_root, split="test")


def test_summary_counts_the_defects(xview_root: Path, tmp_path: Path) -> None:
    summary = convert_dataset("xview", xview_root, tmp_path / "r.jsonl")
    assert summary.records == 4 and summary.objects == 4 and summary.rejects == []
    assert summary.counts["xView images referenced but missing"] == 1


@pytest.mark.parametrize("text", ["1,2,3", "1,2,3,x", "", None, "1.5,2,3,4"])
def test_parse_bounds_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_bounds(text)


def test_parse_bounds_and_type_id() -> None:
    assert parse_bounds("2712,1145,2746,1177") == [2712, 1145, 2746, 1177]
    assert parse_type_id(73) == 73 and parse_type_id("73") == 73
    with pytest.raises(ValueError):
        parse_type_id(True)


def test_cli_convert(xview_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(app, ["convert", "xview", str(xview_root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 records (1 without object labels), 4 objects in 4 classes" in result.output
    assert "xView features with unknown type_id 75 skipped: 1" in result.output
    assert "image 1395.tif is referenced" in result.output
    assert len([json.loads(line) for line in out.open()]) == 4
