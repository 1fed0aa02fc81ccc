from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.scene_classification import AID_CLASSES, RESISC45_CLASSES, UCM_CLASSES
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ROOT of each scene classification fixture, by converter name."""
    made = {
        name: load_fixture_module(name).make_fixture(tmp_path_factory.mktemp(name))
        for name in ("ucm", "aid", "resisc45")
    }
    return {
        "ucm": made["ucm"],
        "aid": made["aid"],
        "resisc45": made["resisc45"] / "RESISC45",
        "resisc45-spaces": made["resisc45"] / "RESISC45-spaces",
    }


def _records(name: str, root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter(name)(root, **kwargs).records()}


def test_class_lists_match_the_dataset_sizes() -> None:
    assert (len(UCM_CLASSES), len(AID_CLASSES), len(RESISC45_CLASSES)) == (21, 30, 45)


def test_ucm_torchgeo_split_files_in_root(roots: dict[str, Path]) -> None:
    log = ProblemLog()
    records = _records("ucm", roots["ucm"], log=log)
    assert {r.id: r.split for r in records.values()} == {
        "ucm/train/agricultural/agricultural00": "train",
        "ucm/train/airplane/airplane00": "train",
        "ucm/val/agricultural/agricultural01": "val",
        "ucm/test/denseresidential/denseresidential00": "test",
    }
    farm = records["ucm/train/agricultural/agricultural00"]
    assert farm.label == "agricultural" and farm.captions == [] and farm.objects == []
    assert farm.image.path == "UCMerced_LandUse/Images/agricultural/agricultural00.tif"
    dense = records["ucm/test/denseresidential/denseresidential00"]
    assert (dense.image.width, dense.image.height) == (32, 30)  # off-size, read from the file
    assert log.problems == [] and log.warnings == []


def test_ucm_split_filter(roots: dict[str, Path]) -> None:
    assert list(_records("ucm", roots["ucm"], split="val")) == [
        "ucm/val/agricultural/agricultural01"
    ]
    with pytest.raises(
        InputError, match=r"no split file for split 'trian'; split files: train, val, test"
    ):
        list(get_converter("ucm")(roots["ucm"], split="trian").records())


def test_bad_split_file_names_file_line_and_value(roots: dict[str, Path]) -> None:
    converter = get_converter("ucm")(roots["ucm"], options={"splits": "splits-bad"})
    with pytest.raises(InputError) as caught:
        list(converter.records())
    error = caught.value
    assert error.file.endswith("splits-bad/train.txt") and error.line == 2
    assert error.value == "beach00.tif" and "names no image" in str(error)


def test_bad_split_files_with_skip_bad(roots: dict[str, Path]) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records("ucm", roots["ucm"], options={"splits": "splits-bad"}, log=log)
    assert list(records) == ["ucm/train/agricultural/agricultural00"]
    assert [(Path(p.file).name, p.line, p.value, p.reason) for p in log.problems] == [
        ("train.txt", 2, "beach00.tif", "split file line names no image in a class folder"),
        ("test.txt", 1, "agricultural00.tif", "image is already in split 'train'"),
    ]
    assert log.counts["images in no split file (left out)"] == 3
    assert "3 images are in no split file" in log.warnings[0].reason


def test_aid_without_split_files_is_all(roots: dict[str, Path]) -> None:
    log = ProblemLog()
    records = _records("aid", roots["aid"], log=log)
    assert sorted(records) == [
        "aid/all/Airport/airport_1",
        "aid/all/Airport/airport_2",
        "aid/all/DenseResidential/denseresidential_10",
        "aid/all/Port/port_120",
    ]
    port = records["aid/all/Port/port_120"]
    assert port.label == "Port" and port.split == "all" and port.image.width == 60
    assert records["aid/all/DenseResidential/denseresidential_10"].label == "DenseResidential"
    (warning,) = log.warnings
    assert warning.file.endswith("Port/Thumbs.db") and "not an image file" in warning.reason


def test_split_without_split_files_explains(roots: dict[str, Path]) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("aid")(roots["aid"], split="train").records())
    message = str(caught.value)
    assert "aid has no official split, so --split train needs split files" in message
    assert "-O splits=DIR with train.txt" in message and "split 'all'" in message


def test_resisc45_torchgeo_split_files(roots: dict[str, Path]) -> None:
    records = _records("resisc45", roots["resisc45"])
    assert {r.id: r.label for r in records.values()} == {
        "resisc45/train/airplane/airplane_001": "airplane",
        "resisc45/train/baseball_diamond/baseball_diamond_001": "baseball_diamond",
        "resisc45/val/airplane/airplane_002": "airplane",
        "resisc45/test/sea_ice/sea_ice_001": "sea_ice",
    }


def test_resisc45_split_folder_with_class_paths_and_crlf(roots: dict[str, Path]) -> None:
    records = _records("resisc45", roots["resisc45"], options={"splits": "splits"})
    assert {r.id.rsplit("/", 1)[1]: r.split for r in records.values()} == {
        "airplane_001": "train",
        "airplane_002": "val",
        "sea_ice_001": "val",
        "baseball_diamond_001": "test",
    }
    absolute = {"splits": str(roots["resisc45"] / "splits")}
    assert set(_records("resisc45", roots["resisc45"], options=absolute)) == set(records)


def test_class_folders_with_spaces_are_kept_and_stray_images_rejected(
    roots: dict[str, Path],
) -> None:
    with pytest.raises(InputError, match="image is not inside a class folder"):
        list(get_converter("resisc45")(roots["resisc45-spaces"]).records())
    log = ProblemLog(skip_bad=True)
    records = _records("resisc45", roots["resisc45-spaces"], log=log)
    diamond = records["resisc45/all/baseball diamond/baseball_diamond_001"]
    assert diamond.label == "baseball diamond"
    assert diamond.image.path == "NWPU-RESISC45/baseball diamond/baseball_diamond_001.jpg"
    assert [Path(p.file).name for p in log.problems] == ["stray_001.jpg"]
    assert ["not in the resisc45 class list" in w.reason for w in log.warnings] == [True]


def test_same_file_name_in_two_classes(roots: dict[str, Path], tmp_path: Path) -> None:
    for label in ("forest", "river"):
        (tmp_path / label).mkdir()
        shutil.copy(roots["aid"] / "AID/Airport/airport_1.jpg", tmp_path / label / "scene_1.jpg")
    assert set(_records("aid", tmp_path)) == {"aid/all/forest/scene_1", "aid/all/river/scene_1"}
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.txt").write_text("scene_1.jpg\nriver/scene_1.jpg\n")
    log = ProblemLog(skip_bad=True)
    records = _records("aid", tmp_path, options={"splits": "splits"}, log=log)
    assert list(records) == ["aid/train/river/scene_1"]  # the splits folder is no class
    assert log.problems[0].line == 1
    assert "names 2 images (forest/scene_1.jpg, river/scene_1.jpg)" in log.problems[0].reason


def test_class_folders_in_root_beside_torchgeo_split_files(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    shutil.copytree(roots["aid"] / "AID", tmp_path, dirs_exist_ok=True)
    (tmp_path / "aid-test.txt").write_text("Airport\\airport_2.jpg\r\n")
    log = ProblemLog()
    records = _records("aid", tmp_path, split="test", log=log)
    assert list(records) == ["aid/test/Airport/airport_2"]
    assert [Path(w.file).name for w in log.warnings] == ["Thumbs.db", tmp_path.name]
    assert log.counts["images in no split file (left out)"] == 3


def test_layout_errors(roots: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images in class folders; expected ROOT/AID"):
        list(get_converter("aid")(tmp_path).records())
    with pytest.raises(InputError, match="option splits must name a folder"):
        list(get_converter("ucm")(roots["ucm"], options={"splits": "nowhere"}).records())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \*.txt split files"):
        list(
            get_converter("ucm")(
                roots["ucm"], options={"splits": str(tmp_path / "empty")}
            ).records()
        )


def test_image_escaping_the_root_is_refused(roots: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "Airport").mkdir()
    os.symlink(roots["aid"] / "AID/Airport/airport_1.jpg", tmp_path / "Airport/airport_1.jpg")
    with pytest.raises(InputError, match="outside the dataset root"):
        list(get_converter("aid")(tmp_path).records())


@pytest.mark.parametrize(
    ("name", "split", "count"), [("ucm", "train", 2), ("aid", None, 4), ("resisc45", "test", 1)]
)
def test_cli_convert(
    roots: dict[str, Path], tmp_path: Path, name: str, split: str | None, count: int
) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", name, str(roots[name]), "-o", str(out)] + (
        ["--split", split] if split else []
    )
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{count} records ({count} without object labels)")
    written = list(read_jsonl(out, Record))
    assert len(written) == count and all(r.label and r.split == (split or "all") for r in written)


def test_cli_split_without_split_files_exits_2(roots: dict[str, Path], tmp_path: Path) -> None:
    args = ["convert", "aid", str(roots["aid"]), "-o", str(tmp_path / "r.jsonl"), "--split", "val"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "aid has no official split" in result.output
    assert not (tmp_path / "r.jsonl").exists()
