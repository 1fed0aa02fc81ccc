from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.yolo import label_path_of
from rsgpt4v.errors import InputError
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module

fixture = load_fixture_module("yolo")


@pytest.fixture(scope="module")
def yolo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture.make_fixture(tmp_path_factory.mktemp("yolo"))


def _convert(root: Path, **kwargs) -> tuple[dict[str, Record], ProblemLog]:
    log = kwargs.pop("log", ProblemLog())
    records = {r.id: r for r in get_converter("yolo")(root, log=log, **kwargs).records()}
    return records, log


def test_normalised_boxes_and_polygons_land_on_their_pixels(yolo_root: Path) -> None:
    records, log = _convert(yolo_root / "yolo-detect")
    a = records["yolo/train/a"]  # 200 x 100
    assert a.image.path == "images/train/a.jpg" and a.meta["label_file"] == "labels/train/a.txt"
    plane, ship, tank = a.objects
    assert (plane.category, plane.bbox, plane.polygon) == ("plane", [40, 40, 20, 20], None)
    assert ship.polygon == [[80, 20], [120, 30], [110, 50], [70, 40]]  # a YOLO-OBB line
    assert ship.bbox == pytest.approx([70, 20, 50, 30])
    assert tank.category == "storage tank"
    assert tank.bbox == pytest.approx([186, 40, 14, 20])  # past the right edge: clipped
    segment = records["yolo/train/part2/b"].objects[0]  # 100 x 100, six points
    assert segment.polygon == [[10, 10], [30, 10], [40, 30], [30, 50], [10, 50], [0, 30]]
    assert segment.bbox == pytest.approx([0, 10, 40, 40])
    assert log.problems == []


def test_empty_label_file_is_no_objects_and_missing_one_is_unlabelled(yolo_root: Path) -> None:
    records, log = _convert(yolo_root / "yolo-detect")
    assert sorted(records) == [
        "yolo/train/a", "yolo/train/c", "yolo/train/part2/b", "yolo/val/d", "yolo/val/e",
    ]  # fmt: skip
    assert records["yolo/val/d"].meta["labelled"] is True and records["yolo/val/d"].objects == []
    for unlabelled in ("yolo/train/c", "yolo/val/e"):
        assert records[unlabelled].meta["labelled"] is False
    assert log.counts["images without a label file (kept unlabelled)"] == 2
    assert "2 images have no label file" in log.warnings[-1].reason


def test_split_option_and_txt_lists(yolo_root: Path) -> None:
    records, _ = _convert(yolo_root / "yolo-detect", split="val")
    assert sorted(records) == ["yolo/val/d", "yolo/val/e"]
    assert records["yolo/val/d"].split == "val"
    with pytest.raises(InputError, match=r"no split 'test' \(found: train, val\)"):
        _convert(yolo_root / "yolo-detect", split="test")


def test_bad_lines_stop_the_run_or_are_listed_with_skip_bad(yolo_root: Path) -> None:
    with pytest.raises(InputError, match="class id 5 is not in the names") as raised:
        _convert(yolo_root / "yolo-bad")
    assert raised.value.line == 1 and raised.value.file.endswith("labels/train/x.txt")
    records, log = _convert(yolo_root / "yolo-bad", log=ProblemLog(skip_bad=True))
    assert [(p.line, p.reason.split(":")[0].split(",")[0]) for p in log.problems] == [
        (1, "class id 5 is not in the names of the YAML (0 to 1)"),
        (2, "coordinates must be fractions of the image size (0 to 1)"),
        (3, "expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 …'"),
        (4, "not 'class x y …'"),
    ]
    (x,) = records.values()
    assert [o.bbox for o in x.objects] == [[40, 40, 20, 20]] and x.meta["skipped_objects"] == 4


def test_yaml_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no data\.yaml; name the dataset YAML with -O yaml=FILE"):
        get_converter("yolo")(tmp_path)
    (tmp_path / "data.yaml").write_text("train: images\nnames: [a, b]\nnc: 3\n")
    with pytest.raises(InputError, match="'nc' is 3 but 'names' lists 2 classes"):
        get_converter("yolo")(tmp_path)
    (tmp_path / "data.yaml").write_text("train: ../../elsewhere\nnames: [a]\n")
    with pytest.raises(InputError, match="resolves outside the dataset root"):
        list(get_converter("yolo")(tmp_path).records())
    (tmp_path / "data.yaml").write_text("train: [images\nnames: [a]\n")
    with pytest.raises(InputError, match="not valid YAML") as raised:
        get_converter("yolo")(tmp_path)
    assert raised.value.line == 2


def test_labels_are_found_where_ultralytics_looks() -> None:
    assert label_path_of(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path_of(Path("/images/d/images/x/a.b.png")) == Path("/images/d/labels/x/a.b.txt")
    assert label_path_of(Path("/d/pics/a.jpg")) == Path("/d/pics/a.txt")


def test_convert_through_the_cli(yolo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        app, ["convert", "yolo", str(yolo_root / "yolo-detect"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "5 records (2 without object labels), 4 objects in 3 classes" in result.output
    assert len(list(read_jsonl(out, Record))) == 5


def test_split_file_lines_are_reported_once_by_line(tmp_path: Path) -> None:
    """A listed image that is not there, or outside the root, is rejected naming the split
    file and its line, once (the progress-bar count reads the list too)."""
    fixture.noise_image(tmp_path / "images/a.jpg", 20, 20, 1)
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: [x]\n")
    (tmp_path / "train.txt").write_text("./images/a.jpg\n\n./images/gone.jpg\n../../etc/x.jpg\n")
    log = ProblemLog(skip_bad=True)
    converter = get_converter("yolo")(tmp_path, log=log)
    assert converter.estimate_count() == 2
    assert [r.id for r in converter.records()] == ["yolo/train/images/a"]
    assert [(p.reason, Path(p.file).name, p.line) for p in log.problems] == [
        ("image resolves outside the dataset root", "train.txt", 4),
        ("listed image not found", "train.txt", 3),
    ]


def test_a_repeated_label_line_is_rejected_not_counted_twice(
    yolo_root: Path, tmp_path: Path
) -> None:
    """The same class and numbers twice in one file used to give the object twice, so "how
    many planes" answers were wrong; ``0.50`` for ``0.5`` is the same object."""
    out = tmp_path / "r.jsonl"
    args = ["convert", "yolo", str(yolo_root / "yolo-dup"), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "labels/train/x.txt:3: duplicate of line 1: the same object twice" in " ".join(
        result.output.split()
    )
    result = CliRunner().invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    (record,) = read_jsonl(out, Record)
    assert [o.category for o in record.objects] == ["plane", "ship"]
    assert "skipped_objects" not in record.meta  # each object is there, once: counts hold
    rejects = [json.loads(line) for line in rejects_path(out).open()]
    assert [(r["line"], r["value"], r["reason"]) for r in rejects] == [
        (3, "0 0.5 0.5 0.2 0.2", "duplicate of line 1: the same object twice"),
        (4, "0 0.50 0.5 0.2 0.2", "duplicate of line 1: the same object twice"),
    ]
