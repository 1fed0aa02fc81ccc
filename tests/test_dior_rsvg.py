from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def rsvg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("dior-rsvg").make_fixture(tmp_path_factory.mktemp("dior-rsvg"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("dior-rsvg")(root, **kwargs).records()}


def _expressions(record: Record) -> list[tuple[int, str, str, list[float]]]:
    return [
        (o.attributes["index"], o.category, o.attributes["expression"], o.bbox)
        for o in record.objects
    ]


def test_split_files_select_objects_by_global_index(rsvg_root: Path) -> None:
    records = _records(rsvg_root / "DIOR_RSVG")
    assert list(records) == [
        "dior-rsvg/train/00001",
        "dior-rsvg/test/00001",
        "dior-rsvg/train/00002",
        "dior-rsvg/test/00002",
        "dior-rsvg/val/00003",
    ]
    assert _expressions(records["dior-rsvg/test/00001"]) == [
        (0, "golffield", "A green and brown golf field", [5, 10, 35, 40])
    ]
    assert _expressions(records["dior-rsvg/train/00001"]) == [
        (1, "vehicle", "The vehicle on the lower right", [50, 50, 6, 4])
    ]
    assert _expressions(records["dior-rsvg/train/00002"]) == [
        (2, "Expressway-Service-area", "An expressway service area at the top", [0, 0, 30, 20]),
        (3, "ship", "The ship on the right", [40, 30, 24, 14]),  # xmax 70 clipped to 64
    ]
    assert _expressions(records["dior-rsvg/val/00003"])[0][0] == 5


def test_record_contents(rsvg_root: Path) -> None:
    record = _records(rsvg_root / "DIOR_RSVG", split="train")["dior-rsvg/train/00002"]
    assert record.image.path == "JPEGImages/00002.jpg"
    assert (record.image.width, record.image.height) == (64, 64)
    assert [o.id for o in record.objects] == [0, 1]
    assert all(o.polygon is None and not o.difficult for o in record.objects)
    assert record.meta == {"annotation_file": "Annotations/00002.xml", "objects_exhaustive": False}
    assert record.labelled


def test_split_file_of_image_ids_is_recognised(rsvg_root: Path) -> None:
    records = _records(rsvg_root / "DIOR_RSVG-image-ids")
    assert list(records) == ["dior-rsvg/train/00001", "dior-rsvg/train/00003"]
    assert [o.attributes["index"] for o in records["dior-rsvg/train/00001"].objects] == [0, 1]


def test_split_entries_option_overrides_the_guess(rsvg_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(
        rsvg_root / "DIOR_RSVG", split="val", log=log, options={"split_entries": "images"}
    )
    assert records == {}
    assert [(p.reason, p.line, p.value) for p in log.problems] == [
        ("names no file in Annotations/", 1, "5")
    ]
    with pytest.raises(InputError, match="split_entries must be one of"):
        get_converter("dior-rsvg")(rsvg_root / "DIOR_RSVG", options={"split_entries": "ids"})


def test_missing_description_raises_naming_file_and_object(rsvg_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        _records(rsvg_root / "DIOR_RSVG-bad")
    error = caught.value
    assert error.file.endswith("Annotations/00001.xml")
    assert error.entry == "/annotation/object[2]" and "<description>" in str(error)


def test_skip_bad_reports_every_problem(rsvg_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(rsvg_root / "DIOR_RSVG-bad", log=log)
    record = records["dior-rsvg/train/00001"]
    assert [o.attributes["index"] for o in record.objects] == [0]
    assert record.meta["skipped_objects"] == 2
    assert [(Path(p.file).name, p.line, p.entry, p.reason) for p in log.problems] == [
        ("00001.xml", None, "/annotation/object[2]", "missing <description> in <object>"),
        (
            "00001.xml",
            None,
            "/annotation/object[3]",
            "object lies outside the 32x32 image or has no area",
        ),
        ("00002.xml", None, None, "image not found"),
        ("train.txt", 5, None, "object index beyond the 4 objects of Annotations/"),
    ]
    assert log.problems[2].value == "JPEGImages/00002.jpg"


def test_malformed_xml_stops_an_index_based_conversion_even_with_skip_bad(
    rsvg_root: Path,
) -> None:
    with pytest.raises(InputError, match="objects after this file cannot be placed") as caught:
        _records(rsvg_root / "DIOR_RSVG-broken-xml", log=ProblemLog(skip_bad=True))
    assert caught.value.file.endswith("00001.xml")


def test_without_split_files_everything_is_split_all(rsvg_root: Path, tmp_path: Path) -> None:
    clean = load_fixture_module("dior-rsvg").make_clean(tmp_path)
    for name in ("train.txt", "val.txt", "test.txt"):
        (clean / name).unlink()
    log = ProblemLog()
    records = _records(clean, log=log)
    assert list(records) == ["dior-rsvg/all/00001", "dior-rsvg/all/00002", "dior-rsvg/all/00003"]
    assert sum(len(r.objects) for r in records.values()) == 6
    assert "split 'all'" in log.warnings[0].reason
    with pytest.raises(InputError, match=r"no split file train\.txt"):
        _records(clean, split="train")


def test_cli_convert(rsvg_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app,
        ["convert", "dior-rsvg", str(rsvg_root / "DIOR_RSVG"), "-o", str(out), "--split", "test"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 records (0 without object labels), 2 objects in 2 classes")
    assert [r.id for r in read_jsonl(out, Record)] == [
        "dior-rsvg/test/00001",
        "dior-rsvg/test/00002",
    ]
