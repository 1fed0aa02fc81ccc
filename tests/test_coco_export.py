"""Records → COCO instances JSON (``rsgpt4v coco``), checked with pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.coco_export import object_annotation, records_to_coco
from rsgpt4v.convert import convert_dataset
from rsgpt4v.errors import InputError
from rsgpt4v.schema import ImageInfo, Object, Record, read_jsonl, write_jsonl
from tests.conftest import load_fixture_module

runner = CliRunner()


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_fixture_module("coco").make_fixture(tmp_path_factory.mktemp("coco"))


def _by_file(data: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(file_name, annotation without ids, category by name), in image order."""
    names = {c["id"]: c["name"] for c in data["categories"]}
    files = {i["id"]: i["file_name"].removeprefix(prefix) for i in data["images"]}
    order = [i["id"] for i in data["images"]]
    annotations = sorted(data["annotations"], key=lambda a: order.index(a["image_id"]))
    return [
        (
            files[a["image_id"]],
            {
                **{k: v for k, v in a.items() if k not in ("id", "image_id", "category_id")},
                "category": names[a["category_id"]],
            },
        )
        for a in annotations
    ]


def test_coco_records_coco_round_trip(coco_root: Path, tmp_path: Path) -> None:
    records, output = tmp_path / "records.jsonl", tmp_path / "coco.json"
    convert_dataset("coco", coco_root, records, split="train")
    summary = records_to_coco(records, output)
    source = json.loads((coco_root / "annotations/instances_train.json").read_text())
    exported = json.loads(output.read_text())
    # categories: the same names, ids 1..K in sorted-name order (supercategory is not kept)
    assert exported["categories"] == [
        {"id": 1, "name": "Small_Vehicle"},
        {"id": 2, "name": "ship"},
        {"id": 3, "name": "storage tank"},
    ]
    assert summary.categories == ["Small_Vehicle", "ship", "storage tank"]
    # images: the same entries in the same order; new ids, file_name relative to the ROOT
    assert [{**i, "id": None} for i in exported["images"]] == [
        {**i, "id": None, "file_name": "train/" + i["file_name"]} for i in source["images"]
    ]
    # annotations: equal but for ids (parts, RLE crowd, area, extras all come back)
    assert _by_file(exported, prefix="train/") == _by_file(source)
    assert (summary.images, summary.annotations, summary.unlabelled) == (3, 4, 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' numpy 2 notice
def test_pycocotools_loads_it_and_boxes_match_the_records(coco_root: Path, tmp_path: Path) -> None:
    records_path, output = tmp_path / "records.jsonl", tmp_path / "coco.json"
    convert_dataset("coco", coco_root, records_path, skip_bad=True)  # train + val
    result = runner.invoke(app, ["coco", str(records_path), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "4 images, 6 annotations in 3 categories" in result.output
    records = list(read_jsonl(records_path, Record))
    coco = COCO(str(output))
    assert len(coco.getImgIds()) == len(records) == 4
    assert len(coco.getAnnIds()) == sum(len(r.objects) for r in records) == 6
    assert len(coco.getCatIds()) == 3
    for image_id, record in zip(sorted(coco.getImgIds()), records, strict=True):
        assert coco.loadImgs(image_id)[0]["file_name"] == record.image.path
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert [a["bbox"] for a in annotations] == [o.bbox for o in record.objects]
        names = [coco.loadCats(a["category_id"])[0]["name"] for a in annotations]
        assert names == [o.category for o in record.objects]
        for annotation in annotations:  # every segmentation rasterises, polygons and RLE
            assert coco.annToMask(annotation).sum() > 0


def test_dota_records_polygons_difficult_and_unlabelled(dota_root: Path, tmp_path: Path) -> None:
    records, output = tmp_path / "records.jsonl", tmp_path / "coco.json"
    convert_dataset("dota", dota_root / "DOTA", records, skip_bad=True)
    summary = records_to_coco(records, output)
    assert summary.unlabelled == 1  # the test split: no annotations would mean "no objects"
    data = json.loads(output.read_text())
    assert "test/images/P0005.png" not in {i["file_name"] for i in data["images"]}
    ship = next(a for a in data["annotations"] if a["bbox"] == [50, 30, 14, 14])
    assert ship["difficult"] is True and ship["iscrowd"] == 0
    assert ship["segmentation"] == [[50, 30, 63, 32, 70, 44, 55, 42]]  # source polygon
    assert ship["area"] == pytest.approx(127.542857)  # inside the 64x48 image; the quad is 156
    plane = next(a for a in data["annotations"] if a["bbox"] == [10, 5, 20, 10])
    assert plane["area"] == 200 and "difficult" not in plane


def test_box_only_objects_get_their_rectangle() -> None:
    record = Record(
        id="x/train/1",
        dataset="x",
        split="train",
        image=ImageInfo(path="1.tif", width=32, height=32),
        objects=[Object(id=0, category="Building", bbox=[2, 4, 10, 6], attributes={"type_id": 73})],
    )
    annotation = object_annotation(record.objects[0], record)
    assert annotation["segmentation"] == [[2, 4, 12, 4, 12, 10, 2, 10]]
    assert annotation["area"] == 60 and annotation["type_id"] == 73


def test_tiles_get_recomputed_geometry() -> None:
    source = {"segmentation": [[0, 0, 30, 0, 30, 30, 0, 30]], "area": 900.0}
    tile = ImageInfo(path="t.png", width=16, height=16, parent="s", window=[0, 0, 16, 16])
    obj = Object(
        id=0,
        category="ship",
        bbox=[0, 0, 16, 16],
        polygon=[[0, 0], [16, 0], [16, 16], [0, 16]],
        attributes=source,
    )
    record = Record(id="t", dataset="d", split="train", image=tile, objects=[obj])
    annotation = object_annotation(obj, record)
    assert annotation["segmentation"] == [[0, 0, 16, 0, 16, 16, 0, 16]]
    assert annotation["area"] == 256


def test_bad_records_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [])
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(InputError) as caught:
        records_to_coco(bad, tmp_path / "out.json")
    assert caught.value.line == 1
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.json.partial").exists()
    result = runner.invoke(app, ["coco", str(tmp_path / "missing.jsonl"), "-o", "o.json"])
    assert result.exit_code == 2 and "file not found" in result.output


def test_help() -> None:
    result = runner.invoke(app, ["coco", "--help"])
    assert result.exit_code == 0 and "sorted-name order" in result.output
