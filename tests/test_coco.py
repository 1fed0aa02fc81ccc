"""The ``coco`` and ``isaid`` converters (COCO instance JSON → records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.coco import ISAID_CLASSES
from rsgpt4v.errors import InputError
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("coco").make_fixture(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def isaid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("isaid").make_fixture(tmp_path_factory.mktemp("isaid"))


def _records(name: str, root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter(name)(root, **kwargs).records()}


# -- coco ---------------------------------------------------------------------------------------
def test_coco_default_layout(coco_root: Path) -> None:
    records = _records("coco", coco_root, split="train")
    assert list(records) == ["coco/train/a", "coco/train/sub/b", "coco/train/c"]  # JSON order
    a = records["coco/train/a"]
    assert a.image.path == "train/a.png" and (a.image.width, a.image.height) == (64, 48)
    assert (
        a.meta["image_id"] == 7 and a.meta["annotation_file"] == "annotations/instances_train.json"
    )
    assert a.meta["coco"] == {"license": 1, "date_captured": "2019-08-23 11:47:51"}
    assert records["coco/train/sub/b"].image.path == "train/sub/b.png"
    assert records["coco/train/c"].objects == [] and records["coco/train/c"].labelled


def test_coco_classes_by_name_not_id(coco_root: Path) -> None:
    records = _records("coco", coco_root, split="train")
    assert [o.category for o in records["coco/train/a"].objects] == [
        "Small_Vehicle",
        "ship",
        "Small_Vehicle",
    ]
    assert records["coco/train/sub/b"].objects[0].category == "storage tank"


def test_coco_polygons_parts_and_extras(coco_root: Path) -> None:
    car, ship, _ = _records("coco", coco_root, split="train")["coco/train/a"].objects
    assert car.bbox == [10, 5, 10, 6]
    assert car.polygon == [[10, 5], [20, 5], [20, 11], [10, 11]]
    assert car.attributes == {"area": 60.0}  # one part: the polygon says it all
    assert ship.polygon == [[40, 20], [60, 20], [60, 40], [40, 40]]  # the larger of two parts
    assert len(ship.attributes["segmentation"]) == 2
    assert ship.difficult is True and ship.attributes["attributes"] == {"occluded": False}


def test_coco_crowd_rle_is_kept_in_attributes(coco_root: Path) -> None:
    record = _records("coco", coco_root, split="train")["coco/train/a"]
    crowd = record.objects[2]
    assert crowd.polygon is None and crowd.bbox == [7, 20, 2, 12]
    assert crowd.attributes["iscrowd"] == 1
    assert crowd.attributes["segmentation"]["size"] == [48, 64]
    assert record.meta["crowd_regions"] == 1


def test_coco_options_name_the_files(coco_root: Path) -> None:
    options = {
        "annotations": "annotations/instances_train.json",
        "images": "train",
        "dataset": "toy",
    }
    records = _records("coco", coco_root, options=options)
    assert list(records) == ["toy/all/a", "toy/all/sub/b", "toy/all/c"]
    assert records["toy/all/a"].dataset == "toy"
    with pytest.raises(InputError, match="inside the dataset root"):
        _records("coco", coco_root, options={**options, "images": ".."})


def test_coco_bad_entry_stops_the_run_naming_its_json_path(coco_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("coco")(coco_root, split="val").records())
    assert caught.value.file.endswith("instances_val.json")
    assert caught.value.entry == "annotations[5].image_id"  # found while indexing


def test_coco_skip_bad_keeps_the_clean_part(coco_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    record = _records("coco", coco_root, split="val", log=log)["coco/val/d"]
    assert [(p.entry, p.value) for p in log.problems] == [
        ("annotations[5].image_id", "99"),
        ("annotations[2].bbox", "[1, 2, 3]"),
        ("annotations[3].category_id", "7"),
        ("annotations[4].segmentation[0]", "[1, 1, 5, 1, 5]"),
    ]
    box_only, clipped = record.objects
    assert box_only.polygon is None and box_only.bbox == [2, 2, 10, 8]
    assert clipped.bbox == [20, 24, 12, 4]  # 20..40 clipped to the 32-px image
    assert record.meta["skipped_objects"] == 3


def test_coco_without_annotation_files_says_what_it_expects(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no annotations/instances_\*\.json"):
        _records("coco", tmp_path)


def test_coco_image_size_mismatch_is_rejected(coco_root: Path, tmp_path: Path) -> None:
    data = json.loads((coco_root / "annotations/instances_train.json").read_text())
    data["images"][0]["width"] = 640
    (tmp_path / "wrong.json").write_text(json.dumps(data))
    log = ProblemLog(skip_bad=True)
    options = {"annotations": str(tmp_path / "wrong.json"), "images": "train"}
    records = _records("coco", coco_root, log=log, options=options)
    assert "coco/all/a" not in records and len(records) == 2
    assert log.problems[0].entry == "images[0]" and "640x48" in log.problems[0].reason


def test_coco_cli_convert(coco_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", "coco", str(coco_root), "-o", str(out), "--split", "train"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 records (0 without object labels), 4 objects in 3 classes" in result.output


# -- isaid --------------------------------------------------------------------------------------
def test_isaid_raw_layout_and_official_ids(isaid_root: Path) -> None:
    records = _records("isaid", isaid_root / "iSAID", split="train")
    assert list(records) == ["isaid/train/P0002", "isaid/train/P0003"]  # masks are not images
    record = records["isaid/train/P0002"]
    assert [o.category for o in record.objects] == ["Small_Vehicle", "plane", "storage_tank"]
    assert record.objects[1].polygon == [[30, 10], [50, 12], [48, 30], [28, 28]]
    assert record.objects[1].bbox == [28, 10, 22, 20]
    assert record.meta["annotation_file"] == "train/Annotations/iSAID_train.json"
    assert records["isaid/train/P0003"].objects == []
    assert {o.category for o in record.objects} <= set(ISAID_CLASSES)


def test_isaid_devkit_ids_map_to_the_same_names(isaid_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    record = _records("isaid", isaid_root / "iSAID", split="val", log=log)["isaid/val/P0004"]
    assert [o.category for o in record.objects] == ["ship", "Ground_Track_Field"]
    assert [p.entry for p in log.problems] == [
        "annotations[2].segmentation[0]",
        "annotations[3].category_name",
    ]
    assert "disagrees with category 15 ('Harbor')" in log.problems[1].reason


def test_isaid_val_error_without_skip_bad(isaid_root: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("isaid")(isaid_root / "iSAID", split="val").records())
    assert caught.value.file.endswith("val/iSAID_val.json")
    assert caught.value.entry == "annotations[2].segmentation[0]"


def test_isaid_test_split_is_unlabelled(isaid_root: Path) -> None:
    record = _records("isaid", isaid_root / "iSAID", split="test")["isaid/test/P0006"]
    assert record.labelled is False and record.image.path == "test/images/P0006.png"


def test_isaid_devkit_patches(isaid_root: Path) -> None:
    records = _records("isaid", isaid_root / "iSAID_patches")
    record = records["isaid/train/P0002_0_32_0_32"]
    assert record.meta["image_id"] == 0  # devkit ids start at 0
    assert record.meta["coco"]["ins_file_name"] == "P0002_0_32_0_32_instance_id_RGB.png"
    assert [o.category for o in record.objects] == ["Small_Vehicle"]


def test_isaid_cli_convert(isaid_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", "isaid", str(isaid_root / "iSAID"), "-o", str(out), "--skip-bad"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 records (1 without object labels), 5 objects in 5 classes" in result.output
    assert "2 rejected items" in result.output


# -- ambiguous images and ids (issue 21, class 6) ------------------------------------------------
def _variant(coco_root: Path, tmp_path: Path, change) -> list[str]:
    """CLI arguments converting a changed copy of the train file (images from ``train/``)."""
    data = json.loads((coco_root / "annotations/instances_train.json").read_text())
    change(data)
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "records.jsonl"
    return ["convert", "coco", str(coco_root), "-o", str(out), "-O", f"annotations={path}"]


def test_coco_repeated_file_name_is_one_error_naming_both_ids(
    coco_root: Path, tmp_path: Path
) -> None:
    """Two entries for a.png used to give two records ``coco/all/a``, each with part of the
    objects (so "no ship here" answers were false)."""

    def repeat_a(data: dict) -> None:
        data["images"][2]["file_name"] = "a.png"  # c.png (id 12) now claims a.png too
        data["annotations"].append({**data["annotations"][3], "id": 105, "image_id": 12})

    args = [*_variant(coco_root, tmp_path, repeat_a), "-O", "images=train"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "[images[2].file_name]" in message and "images[0] (id 7), images[2] (id 12)" in message
    assert "ambiguous, so none of them is converted (4 annotations with them)" in message
    result = CliRunner().invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "records.jsonl"
    assert [r.id for r in read_jsonl(out, Record)] == ["coco/all/sub/b"]
    (reject,) = [json.loads(line) for line in rejects_path(out).open()]  # one, not 4 + 1
    assert (reject["entry"], reject["value"]) == ("images[2].file_name", "a.png")


def test_coco_names_differing_only_in_suffix_or_a_shared_id_are_refused(
    coco_root: Path, tmp_path: Path
) -> None:
    def same_stem(data: dict) -> None:
        data["images"][2]["file_name"] = "a.jpg"  # record id coco/all/a twice

    log = ProblemLog(skip_bad=True)
    path = tmp_path / "stem.json"
    data = json.loads((coco_root / "annotations/instances_train.json").read_text())
    same_stem(data)
    path.write_text(json.dumps(data))
    records = _records(
        "coco", coco_root, log=log, options={"annotations": str(path), "images": "train"}
    )
    assert list(records) == ["coco/all/sub/b"]
    assert "differ only in suffix" in log.problems[0].reason
    data = json.loads((coco_root / "annotations/instances_train.json").read_text())
    data["images"][2]["id"] = 7  # c.png and a.png both id 7: whose are its annotations?
    data["images"].append(dict(data["images"][1]))  # an identical repeat is only a repeat
    path.write_text(json.dumps(data))
    log = ProblemLog(skip_bad=True)
    records = _records(
        "coco", coco_root, log=log, options={"annotations": str(path), "images": "train"}
    )
    assert list(records) == ["coco/all/sub/b"] and len(records["coco/all/sub/b"].objects) == 1
    assert [(p.entry, p.reason.split(":")[0]) for p in log.problems] == [
        ("images[2].id", "images[0], images[2] share id 7 but differ"),
        ("images[3].id", "duplicate image id"),
    ]


@pytest.mark.parametrize(
    ("image_id", "shown"),
    [(True, "True"), (1.0, "1.0"), ([1], "[1]"), ({"id": 1}, "{'id': 1}")],
)
def test_coco_image_id_must_be_an_exact_id(
    coco_root: Path, tmp_path: Path, image_id: object, shown: str
) -> None:
    """``true`` and ``1.0`` used to join image 1 silently; a list or dict crashed."""

    def odd_id(data: dict) -> None:
        data["images"][2]["id"] = 1  # c.png
        data["annotations"].append({**data["annotations"][3], "id": 105, "image_id": image_id})

    args = [*_variant(coco_root, tmp_path, odd_id), "-O", "images=train"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "[annotations[4].image_id]: image_id must be an integer id" in message
    assert f"(got {image_id!r})" in message
    result = CliRunner().invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "records.jsonl"
    records = {r.id: r for r in read_jsonl(out, Record)}
    assert records["coco/all/c"].objects == []  # not joined to image 1
    (reject,) = [json.loads(line) for line in rejects_path(out).open()]
    assert (reject["entry"], reject["value"]) == ("annotations[4].image_id", shown)


def test_coco_coordinates_beyond_float64_sanity_are_rejected(coco_root: Path) -> None:
    data = json.loads((coco_root / "annotations/instances_train.json").read_text())
    data["annotations"][0]["segmentation"] = [[10, 5, 1e300, 5, 20, 11, 10, 11]]
    data["annotations"][3]["bbox"] = [4.5, 4.5, 1e300, 16.0]
    path = coco_root.parent / "huge.json"
    path.write_text(json.dumps(data))
    log = ProblemLog(skip_bad=True)
    records = _records(
        "coco", coco_root, log=log, options={"annotations": str(path), "images": "train"}
    )
    assert [(p.entry, p.reason.split(",")[0]) for p in log.problems] == [
        ("annotations[0].segmentation[0]", "polygon coordinates must lie within ±1"),
        ("annotations[3].bbox", "bbox must lie within ±1"),
    ]
    assert len(records["coco/all/a"].objects) == 2 and records["coco/all/sub/b"].objects == []
