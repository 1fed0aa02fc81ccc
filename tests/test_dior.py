from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.dior import DIOR_CLASSES
from rsgpt4v.converters.safe_xml import read_xml
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module

HBB = "Annotations/Horizontal Bounding Boxes"

# DIOR-R 00001.xml as mmrotate's test data copies it (format doc A2, verbatim).
DIOR_R_00001 = """<?xml version="1.0" encoding="UTF-8"?>
<annotation>
    <filename>00001.jpg</filename>
    <size>
        <width>800</width>
        <height>800</height>
        <depth>3</depth>
    </size>
    <object>
        <type>robndbox</type>
        <name>golffield</name>
        <pose>Unspecified</pose>
        <truncated>0</truncated>
        <difficult>0</difficult>
        <robndbox>
            <x_left_top>133</x_left_top>
            <y_left_top>237</y_left_top>
            <x_right_top>684</x_right_top>
            <y_right_top>237</y_right_top>
            <x_right_bottom>684</x_right_bottom>
            <y_right_bottom>672</y_right_bottom>
            <x_left_bottom>133</x_left_bottom>
            <y_left_bottom>672</y_left_bottom>
        </robndbox>
        <angle>0</angle>
    </object>
</annotation>
"""


@pytest.fixture(scope="module")
def dior_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("dior").make_fixture(tmp_path_factory.mktemp("dior")) / "DIOR"


def _records(root: Path, name: str = "dior", **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter(name)(root, **kwargs).records()}


def test_hbb_train_records(dior_root: Path) -> None:
    records = _records(dior_root, split="train")
    assert sorted(records) == ["dior/train/00001", "dior/train/00002"]
    first = records["dior/train/00001"]
    assert first.image.path == "JPEGImages-trainval/00001.jpg"
    assert (first.image.width, first.image.height) == (64, 64)
    assert [o.category for o in first.objects] == ["golffield", "Expressway-Service-area"]
    assert first.objects[0].bbox == [10, 12, 40, 32]
    assert all(o.polygon is None and not o.difficult for o in first.objects)
    assert first.meta["annotation_file"] == "Annotations/Horizontal Bounding Boxes/00001.xml"


def test_box_past_the_edge_is_clipped(dior_root: Path) -> None:
    area = _records(dior_root, split="train")["dior/train/00001"].objects[1]
    assert area.bbox == [40, 30, 24, 30]  # xmax 70 in a 64-px image ends at 64


def test_annotation_without_objects_is_a_labelled_empty_record(dior_root: Path) -> None:
    record = _records(dior_root, split="train")["dior/train/00002"]
    assert record.objects == [] and record.labelled


def test_image_is_found_in_the_other_image_folder(dior_root: Path) -> None:
    record = _records(dior_root, split="val")["dior/val/00003"]
    assert record.image.path == "JPEGImages-test/00003.jpg"
    assert record.objects[0].category == "Expressway-toll-station"
    assert "Expressway-toll-station" in DIOR_CLASSES


def test_dior_r_polygons_from_corners(dior_root: Path) -> None:
    records = _records(dior_root, name="dior-r", split="train")
    area = records["dior-r/train/00001"].objects[1]
    assert area.category == "Expressway-Service-area"
    assert area.polygon == [[44, 30], [70, 40], [62, 60], [40, 50]]  # source order kept
    assert area.bbox == [40, 30, 24, 30]  # bounds of the polygon, clipped to 64 px
    toll = _records(dior_root, name="dior-r", split="val")["dior-r/val/00003"].objects[0]
    assert toll.difficult is True and toll.bbox == [5, 6, 15, 24]


def test_verbatim_dior_r_object(dior_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "00001.xml"
    path.write_text(DIOR_R_00001)
    element = read_xml(path).find("object")
    source = get_converter("dior-r")(dior_root).read_object(element, path, "/annotation/object[1]")
    assert source.category == "golffield" and source.difficult is False
    assert source.polygon == [[133, 237], [684, 237], [684, 672], [133, 672]]
    assert source.clipped_bbox(800, 800) == [133, 237, 551, 435]


def test_malformed_object_names_file_entry_and_value(dior_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("dior")(dior_root).records())
    error = caught.value
    assert error.file.endswith("Horizontal Bounding Boxes/00005.xml")
    assert error.entry == "/annotation/object[1]" and error.value == "abc"
    assert "<bndbox/xmin> is not a number" in str(error)


def test_skip_bad_collects_every_problem(dior_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(dior_root, name="dior-r", log=log)
    assert len(records) == 5  # 00006 cannot be read: no record
    assert records["dior-r/test/00005"].meta["skipped_objects"] == 2
    assert [o.category for o in records["dior-r/test/00005"].objects] == ["vehicle"]
    reasons = [(p.reason, p.entry, p.line) for p in log.problems]
    assert reasons[0] == (
        "missing <robndbox/y_right_bottom> in <object>",
        "/annotation/object[1]",
        None,
    )
    assert "outside the 32x32 image" in reasons[1][0] and reasons[1][1] == "/annotation/object[2]"
    assert reasons[2][0].startswith("not well-formed XML") and reasons[2][2] == 10
    assert log.problems[2].file.endswith("Oriented Bounding Boxes/00006.xml")


def test_default_reads_every_split_file(dior_root: Path) -> None:
    records = _records(dior_root, log=ProblemLog(skip_bad=True))
    assert {r.split for r in records.values()} == {"train", "val", "test"}


def test_listing_problems_name_the_split_file_and_line(dior_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(dior_root, tmp_path / "DIOR")
    listing = "00001\n\n99999\n00001\n00002 1\n../../secret\n"
    (root / "ImageSets/Main/train.txt").write_text(listing)
    log = ProblemLog(skip_bad=True)
    assert list(_records(root, split="train", log=log)) == ["dior/train/00001"]
    found = [(p.reason, Path(p.file).name, p.line, p.value) for p in log.problems]
    assert found == [
        ("listed image id has no annotation file", "train.txt", 3, "99999"),
        ("image id listed twice", "train.txt", 4, "00001"),
        ("expected one image id (a file stem) per line", "train.txt", 5, "00002 1"),
        ("expected one image id (a file stem) per line", "train.txt", 6, "../../secret"),
    ]


def test_files_escaping_the_root_are_refused(dior_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(dior_root, tmp_path / "DIOR")
    outside = tmp_path / "outside.xml"
    shutil.copy(root / HBB / "00002.xml", outside)
    (root / HBB / "00002.xml").unlink()
    (root / HBB / "00002.xml").symlink_to(outside)
    (root / "JPEGImages-trainval/00001.jpg").unlink()
    (root / "JPEGImages-trainval/00001.jpg").symlink_to(dior_root / "JPEGImages-test/00004.jpg")
    log = ProblemLog(skip_bad=True)
    assert _records(root, split="train", log=log) == {}
    assert [p.reason for p in log.problems] == [
        "image resolves outside the dataset root",
        "annotation file resolves outside the dataset root",
    ]


def test_missing_image_is_reported_against_its_annotation(dior_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(dior_root, tmp_path / "DIOR")
    (root / "JPEGImages-trainval/00002.jpg").unlink()
    with pytest.raises(InputError, match="image not found") as caught:
        list(get_converter("dior")(root, split="train").records())
    assert caught.value.file.endswith("00002.xml")
    assert caught.value.value == "JPEGImages-trainval/00002.jpg"


def test_unknown_split_lists_the_ones_found(dior_root: Path) -> None:
    with pytest.raises(InputError, match=r"no split file trainval.txt \(found: train, val, test\)"):
        list(get_converter("dior")(dior_root, split="trainval").records())


def test_cli_convert(dior_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", "dior-r", str(dior_root), "-o", str(out), "--skip-bad"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "5 records (0 without object labels), 5 objects in 5 classes" in result.output
    assert len(list(read_jsonl(out, Record))) == 5
    rejects = [json.loads(line) for line in (tmp_path / "records.jsonl.rejects.jsonl").open()]
    assert [r["entry"] for r in rejects] == ["/annotation/object[1]", "/annotation/object[2]", None]
