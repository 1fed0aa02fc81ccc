from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.rsod import parse_rsod_labels
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def rsod_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("rsod").make_fixture(tmp_path_factory.mktemp("rsod"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("rsod")(root, **kwargs).records()}


def test_every_part_in_split_all(rsod_root: Path) -> None:
    records = _records(rsod_root / "RSOD")
    assert sorted(records) == [
        "rsod/all/aircraft_1",
        "rsod/all/aircraft_2",
        "rsod/all/oiltank_1",
        "rsod/all/overpass_1",
        "rsod/all/playground_1",
        "rsod/all/playground_2",
    ]
    tanks = records["rsod/all/oiltank_1"]
    assert (
        tanks.image.path == "oiltank/JPEGImages/oiltank_1.jpg" and tanks.meta["part"] == "oiltank"
    )
    assert [(o.category, o.bbox) for o in tanks.objects] == [
        ("oiltank", [2, 2, 10, 10]),
        ("oiltank", [20, 20, 11, 11]),
    ]


def test_xml_is_preferred_and_negative_coordinates_are_clipped(rsod_root: Path) -> None:
    aircraft = _records(rsod_root / "RSOD")["rsod/all/aircraft_1"]
    assert aircraft.meta["annotation_file"] == "aircraft/Annotation/xml/aircraft_1.xml"
    assert aircraft.objects[0].bbox == [0, 4, 12, 10]  # xmin -1 is clipped to 0
    assert aircraft.objects[1].bbox == [30, 30, 10, 11]


def test_text_labels_when_asked_or_when_there_is_no_xml(rsod_root: Path) -> None:
    records = _records(rsod_root / "RSOD", options={"labels": "txt"})
    aircraft = records["rsod/all/aircraft_1"]
    assert aircraft.meta["annotation_file"] == "aircraft/Annotation/labels/aircraft_1.txt"
    assert [o.bbox for o in aircraft.objects] == [[0, 4, 12, 10], [30, 30, 10, 11]]
    playground = _records(rsod_root / "RSOD")["rsod/all/playground_1"]
    assert playground.meta["annotation_file"] == "playground/Annotation/labels/playground_1.txt"
    assert [(o.category, o.bbox) for o in playground.objects] == [("playground", [10, 10, 40, 30])]


def test_empty_xml_and_missing_annotation(rsod_root: Path) -> None:
    log = ProblemLog()
    records = _records(rsod_root / "RSOD", log=log)
    overpass = records["rsod/all/overpass_1"]
    assert overpass.objects == [] and overpass.labelled
    unlabelled = records["rsod/all/playground_2"]
    assert unlabelled.labelled is False and "annotation_file" not in unlabelled.meta
    assert [Path(w.file).name for w in log.warnings] == ["playground_2.jpg"]


def test_parse_tab_and_space_separated_lines() -> None:
    objects, bad = parse_rsod_labels(
        "aircraft_3.jpg\taircraft\t1\t2\t3\t4\r\n\naircraft_3.jpg aircraft 5 6 7.5 8\n",
        "aircraft_3.jpg",
    )
    assert [(o.category, o.box, o.line) for o in objects] == [
        ("aircraft", (1, 2, 3, 4), 1),
        ("aircraft", (5, 6, 7.5, 8), 3),
    ]
    assert bad == []


def test_malformed_line_names_file_line_and_value(rsod_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("rsod")(rsod_root / "RSOD-malformed").records())
    error = caught.value
    assert error.file.endswith("aircraft/Annotation/labels/aircraft_1.txt") and error.line == 2
    assert error.value == "aircraft_1.jpg\taircraft\t4\tx\t12\t12"


def test_skip_bad(rsod_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(rsod_root / "RSOD-malformed", log=log)
    assert list(records) == ["rsod/all/aircraft_1"]
    record = records["rsod/all/aircraft_1"]
    assert [o.bbox for o in record.objects] == [[1, 1, 8, 8]]
    assert record.meta["skipped_objects"] == 2
    found = [(p.reason, Path(p.file).name, p.line) for p in log.problems]
    assert found == [
        ("not an RSOD label line (image name, class, xmin, ymin, xmax, ymax)", "aircraft_1.txt", 2),
        ("line names another image than aircraft_1.jpg", "aircraft_1.txt", 3),
        (found[2][0], "aircraft_2.xml", 3),
        ("annotation file has no image", "aircraft_9.xml", None),
    ]
    assert found[2][0].startswith("not well-formed XML")


def test_split_and_option_errors(rsod_root: Path) -> None:
    with pytest.raises(InputError, match="RSOD has one split, all"):
        get_converter("rsod")(rsod_root / "RSOD", split="train")
    with pytest.raises(InputError, match="option labels must be xml or txt"):
        get_converter("rsod")(rsod_root / "RSOD", options={"labels": "json"})
    with pytest.raises(InputError, match="no part folder with JPEGImages/"):
        list(get_converter("rsod")(rsod_root).records())


def test_cli_convert(rsod_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(app, ["convert", "rsod", str(rsod_root / "RSOD"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 records (1 without object labels), 6 objects in 3 classes" in result.output
    assert "playground_2.jpg: image has no annotation file" in result.output
