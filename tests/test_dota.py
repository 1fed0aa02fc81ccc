from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rsgpt4v.convert import convert_dataset
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.dota import DOTA_V10_CLASSES, parse_dota_label, parse_gsd
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl

REAL_LABELS = Path(__file__).parents[2] / "shared/reference/dota_real_examples/labelTxt"


def _records(root: Path, name: str = "dota", **kwargs) -> dict[str, Record]:
    converter = get_converter(name)(root, **kwargs)
    return {r.id: r for r in converter.records()}


def test_fixture_labels_really_use_crlf(dota_root: Path) -> None:
    raw = (dota_root / "DOTA/train/labelTxt-v1.0/labelTxt/P0001.txt").read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n") == 6 and raw.endswith(b"\r\n")


def test_v10_train_records(dota_root: Path) -> None:
    records = _records(dota_root / "DOTA", split="train")
    assert sorted(records) == [f"dota-v1.0/train/P000{i}" for i in (1, 2, 3)]
    first = records["dota-v1.0/train/P0001"]
    assert first.image.path == "train/images/P0001.png"
    assert (first.image.width, first.image.height, first.image.bands) == (64, 48, 3)
    assert first.image.gsd == pytest.approx(0.146343590398)
    assert first.image.crs is None and first.image.transform is None  # never invented
    assert first.meta["imagesource"] == "GoogleEarth"
    assert [o.category for o in first.objects] == [
        "plane",
        "ship",
        "small-vehicle",
        "small-vehicle",
    ]
    assert [o.id for o in first.objects] == [0, 1, 2, 3]
    assert first.objects[0].bbox == [10, 5, 20, 10]
    assert first.objects[0].polygon == [[10, 5], [30, 5], [30, 15], [10, 15]]


def test_polygon_past_the_edge_is_clipped_in_the_box_only(dota_root: Path) -> None:
    ship = _records(dota_root / "DOTA", split="train")["dota-v1.0/train/P0001"].objects[1]
    assert ship.bbox == [50, 30, 14, 14]  # x reaches 70 in a 64-px image: box ends at 64
    assert max(x for x, _ in ship.polygon) == 70  # the source geometry is kept
    assert ship.difficult is True


def test_float_coordinates_and_difficult_zero(dota_root: Path) -> None:
    car = _records(dota_root / "DOTA", split="train")["dota-v1.0/train/P0001"].objects[3]
    assert car.bbox == [12.5, 30.5, 8.0, 6.0] and car.difficult is False


def test_gsd_null_one_band_png_and_empty_label(dota_root: Path) -> None:
    records = _records(dota_root / "DOTA", split="train")
    gray = records["dota-v1.0/train/P0002"]
    assert gray.image.gsd is None and gray.meta["gsd_raw"] == "null"
    assert gray.image.bands == 1 and gray.meta["imagesource"] == "GF"
    empty = records["dota-v1.0/train/P0003"]
    assert empty.objects == [] and empty.labelled and empty.image.gsd == 0.5


def test_hbb_labels_have_no_polygon(dota_root: Path) -> None:
    record = _records(dota_root / "DOTA", split="train", options={"labels": "hbb"})
    ship = record["dota-v1.0/train/P0001"].objects[1]
    assert ship.polygon is None and ship.bbox == [50, 30, 14, 14]


def test_test_split_is_unlabelled_not_empty(dota_root: Path) -> None:
    record = _records(dota_root / "DOTA", split="test")["dota-v1.0/test/P0005"]
    assert record.objects == [] and record.labelled is False


def test_malformed_line_names_file_line_and_value(dota_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("dota")(dota_root / "DOTA").records())
    error = caught.value
    assert error.file.endswith("val/labelTxt-v1.0/labelTxt/P0004.txt") and error.line == 4
    assert "12 x 4" in str(error.value) and "--skip-bad" in str(error)


def test_skip_bad_writes_rejects_and_flags_the_record(dota_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    summary = convert_dataset("dota", dota_root / "DOTA", out, skip_bad=True)
    assert summary.records == 5 and summary.objects == 6
    rejects = [json.loads(line) for line in (tmp_path / "records.jsonl.rejects.jsonl").open()]
    assert len(rejects) == 1 and rejects[0]["line"] == 4
    assert rejects[0]["file"].endswith("P0004.txt")
    val = next(r for r in read_jsonl(out, Record) if r.id == "dota-v1.0/val/P0004")
    assert len(val.objects) == 1 and val.meta["skipped_objects"] == 1
    assert val.image.gsd is None and val.meta["gsd_raw"] == "None"


def test_v15_keeps_new_classes_and_rejects_objects_outside(dota_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(dota_root / "DOTA-v1.5", log=log)
    record = records["dota-v1.5/train/P0001"]
    assert [o.category for o in record.objects] == ["container-crane"]
    assert "container-crane" not in DOTA_V10_CLASSES
    assert len(log.problems) == 1 and log.problems[0].line == 3
    assert "outside the 64x48 image" in log.problems[0].reason


def test_v20_labels_without_header_and_meta_files(dota_root: Path) -> None:
    records = _records(dota_root / "DOTA-v2.0", name="dota-v2.0")
    first, second = records["dota-v2.0/train/P2806"], records["dota-v2.0/train/P2807"]
    assert first.image.path == "train/images/part4/P2806.png"
    assert [o.category for o in first.objects] == ["airport", "helipad"]
    assert first.image.gsd == 0.4 and first.meta["acquisition dates"] == "None"
    assert second.image.gsd is None and second.meta["imagesource"] == "GF2"
    assert second.meta["acquisition dates"] == "2017-05-01"


def test_devkit_layout_and_version_detection(dota_root: Path) -> None:
    record = _records(dota_root / "devkit")["dota/all/P0706"]
    assert record.image.path == "images/P0706.png" and record.split == "all"
    assert record.objects[0].bbox == [50, 38, 6, 7]  # polygon reaches x=57 in a 56-px image
    assert set(_records(dota_root / "devkit", split="train")) == {"dota/train/P0706"}


def test_version_specific_converter_ignores_other_versions(dota_root: Path) -> None:
    records = _records(dota_root / "DOTA", name="dota-v2.0", split="train")
    assert all(not r.labelled for r in records.values())  # no v2.0 labels in a v1.0 tree


def test_unknown_option_and_split_are_clear_errors(dota_root: Path) -> None:
    with pytest.raises(InputError, match="unknown option for dota: boxes"):
        get_converter("dota")(dota_root / "DOTA", options={"boxes": "obb"})
    with pytest.raises(InputError, match="no split folder 'trian'"):
        list(get_converter("dota")(dota_root / "DOTA", split="trian").records())


def test_image_escaping_the_root_is_refused(dota_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "escape"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    os.symlink(dota_root / "DOTA/train/images/P0001.png", root / "images/P0001.png")
    (root / "labelTxt/P0001.txt").write_text("1 1 5 1 5 5 1 5 plane 0\r\n")
    with pytest.raises(InputError, match="outside the dataset root"):
        list(get_converter("dota")(root).records())


def test_label_without_image_is_reported(dota_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "orphan"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    (root / "labelTxt/P9999.txt").write_text("1 1 5 1 5 5 1 5 plane 0\r\n")
    log = ProblemLog(skip_bad=True)
    assert _records(root, log=log) == {}
    assert log.problems[0].reason == "label file has no image"


def test_parse_label_recognises_headers_by_content() -> None:
    parsed = parse_dota_label("1 2 3 4 5 6 7 8 ship\r\nimagesource:GF\r\n\r\ngsd:1\r\n")
    assert parsed.header == {"imagesource": "GF", "gsd": "1"}
    assert parsed.corners.tolist() == [[[1, 2], [3, 4], [5, 6], [7, 8]]]
    assert (parsed.line_numbers, parsed.categories, parsed.difficult) == ([1], ["ship"], ["0"])
    assert parsed.bad_lines == []


def test_parse_label_finds_the_bad_number_and_keeps_the_rest() -> None:
    text = "1 2 3 4 5 6 7 8 ship 0\n1 2 3 x 5 6 7 8 ship 0\n1 2 3 4 5 6 7 inf ship 0\n9 9 9\n"
    parsed = parse_dota_label(text)
    assert parsed.line_numbers == [1] and parsed.corners.shape == (1, 4, 2)
    assert [number for number, _, _ in parsed.bad_lines] == [2, 3, 4]


@pytest.mark.parametrize(
    "text",
    [
        "0.1 1e1 -0 +5 .5 5. 7 8 ship 0\n3.14159265358979323846 2 3 4 5 6 7 8 ship\n",
        # float() accepts these, the one-call parse does not: the row-by-row fallback keeps them
        "1_0 2 3 4 5 6 7 8 ship 0\n\u0661\u0662 2 3 4 5 6 7 8 ship 1\n"
        "0.1 1e1 -0 +5 .5 5. 7 8 ship\n",
    ],
)
def test_parse_label_reads_numbers_exactly_as_float_does(text: str) -> None:
    parsed = parse_dota_label(text)
    expected = [[float(token) for token in line.split()[:8]] for line in text.splitlines()]
    assert parsed.bad_lines == [] and parsed.corners.reshape(-1, 8).tolist() == expected


TOKEN = st.tuples(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["{!r}", "{:.17g}", "{:.3f}", "{:e}", "{:.0f}"]),
).map(lambda value_and_form: value_and_form[1].format(value_and_form[0]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(TOKEN, min_size=8, max_size=8), min_size=1, max_size=10))
def test_parse_label_values_equal_float_of_each_token(rows: list[list[str]]) -> None:
    parsed = parse_dota_label("\r\n".join(" ".join(row) + " plane 0" for row in rows))
    assert parsed.corners.reshape(-1, 8).tolist() == [[float(t) for t in row] for row in rows]


def test_rejected_objects_are_reported_in_line_order(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    Image.new("RGB", (64, 48)).save(root / "images/P0001.png")
    lines = [
        "1 1 5 1 5 5 1 5 plane 0",
        "100 100 110 100 110 110 100 110 ship 1",  # outside the image
        "1 1 5 1 5 5 1 5 ship 3",  # not a difficult flag
        "2 2 6 2 6 6 2 6 harbor 2",
    ]
    (root / "labelTxt/P0001.txt").write_text("\r\n".join(lines))
    log = ProblemLog(skip_bad=True)
    record = _records(root, log=log)["dota/all/P0001"]
    assert [(o.id, o.category, o.difficult, o.attributes) for o in record.objects] == [
        (0, "plane", False, {}),
        (1, "harbor", True, {"truncated": True}),
    ]
    outside = "[[100.0, 100.0], [110.0, 100.0], [110.0, 110.0], [100.0, 110.0]]"
    assert [(p.line, p.value) for p in log.problems] == [(2, outside), (3, "3")]
    assert record.meta["skipped_objects"] == 1  # the bad flag; an object outside is not counted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.146343590398", 0.146343590398),
        ("1", 1.0),
        ("null", None),
        ("None", None),
        ("1.34e-06", None),
        ("nan", None),
        (None, None),
    ],
)
def test_parse_gsd(text: str | None, expected: float | None) -> None:
    assert parse_gsd(text) == expected


@pytest.mark.skipif(not REAL_LABELS.is_dir(), reason="shared/reference is not beside the repo")
def test_real_dota_label_files_parse_cleanly() -> None:
    for path in sorted(REAL_LABELS.glob("*.txt")):
        parsed = parse_dota_label(path.read_bytes().decode("utf-8"))
        assert parsed.bad_lines == [], path
        assert set(parsed.header) == {"imagesource", "gsd"}
        assert set(parsed.categories) <= set(DOTA_V10_CLASSES)
        assert set(parsed.difficult) <= {"0", "1"} and len(parsed.corners) > 0


def test_corrupt_image_is_reported_not_a_crash(dota_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "corrupt"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    (root / "images/P0001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (root / "labelTxt/P0001.txt").write_text("1 1 5 1 5 5 1 5 plane 0\r\n")
    log = ProblemLog(skip_bad=True)
    assert _records(root, log=log) == {}
    assert log.problems[0].file.endswith("P0001.png")
    assert "cannot read image" in log.problems[0].reason


def test_conversion_leaves_the_garbage_collector_as_it_found_it(
    dota_root: Path, tmp_path: Path
) -> None:
    assert gc.get_freeze_count() == 0
    convert_dataset("dota", dota_root / "devkit", tmp_path / "a.jsonl")
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own freeze (e.g. before forking workers) is kept
    try:
        frozen = gc.get_freeze_count()
        convert_dataset("dota", dota_root / "devkit", tmp_path / "b.jsonl")
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
