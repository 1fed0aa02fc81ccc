from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.nwpu_vhr10 import parse_nwpu_ground_truth
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record
from tests.conftest import load_fixture_module

CLEAN = "NWPU VHR-10 dataset"
MALFORMED = "NWPU VHR-10 malformed"


@pytest.fixture(scope="module")
def nwpu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("nwpu-vhr10").make_fixture(tmp_path_factory.mktemp("nwpu"))


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("nwpu-vhr10")(root, **kwargs).records()}


def test_fixture_has_the_byte_level_quirks(nwpu_root: Path) -> None:
    gt = nwpu_root / CLEAN / "ground truth"
    assert (gt / "001.txt").read_bytes().startswith(b"(10,12),(30,40),1 \n")
    assert b"\n\n\n" in (gt / "002.txt").read_bytes()
    assert not (gt / "003.txt").read_bytes().endswith(b"\n")


def test_positive_and_negative_records(nwpu_root: Path) -> None:
    records = _records(nwpu_root / CLEAN)
    assert sorted(records) == [
        "nwpu-vhr10/negative/001",
        "nwpu-vhr10/negative/002",
        "nwpu-vhr10/positive/001",
        "nwpu-vhr10/positive/002",
        "nwpu-vhr10/positive/003",
    ]
    first = records["nwpu-vhr10/positive/001"]
    assert first.image.path == "positive image set/001.jpg"
    assert [o.category for o in first.objects] == ["airplane", "vehicle", "ship"]
    assert [o.bbox for o in first.objects] == [[10, 12, 20, 28], [5, 9, 15, 13], [33, 20, 30, 27]]
    assert all(o.polygon is None for o in first.objects)
    assert first.meta == {"labelled": True, "label_file": "ground truth/001.txt"}


def test_negative_images_are_labelled_and_empty(nwpu_root: Path) -> None:
    negative = _records(nwpu_root / CLEAN, split="negative")
    assert sorted(negative) == ["nwpu-vhr10/negative/001", "nwpu-vhr10/negative/002"]
    record = negative["nwpu-vhr10/negative/001"]
    assert record.objects == [] and record.labelled
    assert record.image.path == "negative image set/001.jpg"


def test_blank_lines_space_before_id_and_no_final_newline(nwpu_root: Path) -> None:
    records = _records(nwpu_root / CLEAN, split="positive")
    second = records["nwpu-vhr10/positive/002"].objects
    assert [(o.category, o.bbox) for o in second] == [
        ("storage tank", [1, 2, 9, 10]),
        ("basketball court", [20, 20, 20, 10]),
    ]
    third = records["nwpu-vhr10/positive/003"].objects
    assert [o.category for o in third] == ["bridge", "ground track field"]
    assert third[1].bbox == [14, 15, 34, 15]  # x2 = 70 in a 48-px image ends at 48


def test_parse_padded_lines() -> None:
    objects, bad = parse_nwpu_ground_truth("( 55,  9),(168,114),1 \n( 44,259),( 123,334), 6 ")
    assert [(o.category, o.box, o.line) for o in objects] == [
        ("airplane", (55, 9, 168, 114), 1),
        ("basketball court", (44, 259, 123, 334), 2),
    ]
    assert bad == []


def test_malformed_line_names_file_line_and_value(nwpu_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("nwpu-vhr10")(nwpu_root / MALFORMED).records())
    error = caught.value
    assert error.file.endswith("ground truth/001.txt") and error.line == 2
    assert error.value == "(10,x),(20,20),1" and "--skip-bad" in str(error)


def test_skip_bad_rejects_and_warnings(nwpu_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(nwpu_root / MALFORMED, log=log)
    found = [(p.reason, Path(p.file).name, p.line) for p in log.problems]
    assert found == [
        ("not a ground-truth line '(x1,y1),(x2,y2),class id'", "001.txt", 2),
        ("class id must be 1 to 10", "001.txt", 3),
        ("object lies outside the 32x32 image or has no area", "001.txt", 4),
        ("ground-truth file has no positive image", "009.txt", None),
    ]
    first = records["nwpu-vhr10/positive/001"]
    assert [o.bbox for o in first.objects] == [[1, 1, 8, 8]]
    assert first.meta["skipped_objects"] == 3
    unlabelled = records["nwpu-vhr10/positive/002"]
    assert unlabelled.labelled is False and unlabelled.objects == []
    assert log.warnings[0].reason.startswith("positive image has no ground-truth file")


def test_unknown_split(nwpu_root: Path) -> None:
    with pytest.raises(InputError, match=r"no image set for split 'all' \(found: positive"):
        list(get_converter("nwpu-vhr10")(nwpu_root / CLEAN, split="all").records())


def test_cli_convert(nwpu_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app, ["convert", "nwpu-vhr10", str(nwpu_root / CLEAN), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "5 records (0 without object labels), 7 objects in 7 classes" in result.output
    ids = [json.loads(line)["id"] for line in out.open()]
    assert ids[0] == "nwpu-vhr10/positive/001" and len(ids) == 5


def test_ground_truth_that_is_not_utf8_is_reported(nwpu_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(nwpu_root / CLEAN, tmp_path / "nwpu")
    (root / "ground truth/002.txt").write_bytes(b"(1,2),(10,12),3 \xff\n")
    log = ProblemLog(skip_bad=True)
    records = _records(root, split="positive", log=log)
    assert "nwpu-vhr10/positive/002" not in records and len(records) == 2
    assert log.problems[0].reason.startswith("not UTF-8 text")
    assert log.problems[0].file.endswith("ground truth/002.txt")
