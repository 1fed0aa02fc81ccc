from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.captions import clean_caption
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module

DATASETS = ("rsicd", "ucm-captions", "sydney-captions", "rsitmd", "nwpu-captions")


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every captions fixture, by converter name."""
    return {
        name: load_fixture_module(name).make_fixture(tmp_path_factory.mktemp(name))
        for name in DATASETS
    }


def _records(name: str, root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter(name)(root, **kwargs).records()}


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / root.name))


def test_rsicd_uses_raw_not_tokens_and_keeps_duplicates_once(roots: dict[str, Path]) -> None:
    log = ProblemLog()
    records = _records("rsicd", roots["rsicd"], split="train", log=log)
    assert list(records) == ["rsicd/train/airport_1"]
    airport = records["rsicd/train/airport_1"]
    assert airport.image.path == "RSICD_images/airport_1.jpg"
    assert (airport.image.width, airport.image.height) == (48, 48)
    assert airport.captions == [  # five sentences, two distinct; tokens say "planes"
        "Many aircraft are parked next to a long building in an airport.",
        "Many planes are parked next to a long building at an airport.",
    ]
    assert (
        airport.split == "train"
        and airport.label is None
        and airport.meta == {"labelled": False, "imgid": 0}
    )
    assert log.counts["duplicate captions removed"] == 3 and log.problems == []


def test_rsicd_numeric_image_name_in_val(roots: dict[str, Path]) -> None:
    record = _records("rsicd", roots["rsicd"], split="val")["rsicd/val/00433"]
    assert record.captions == ["some green trees are around a white building."]


def test_rsicd_blank_caption_error_names_the_json_path(roots: dict[str, Path]) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("rsicd")(roots["rsicd"]).records())
    error = caught.value
    assert error.file.endswith("dataset_rsicd.json")
    assert error.entry == "images[2].sentences[2].raw" and error.value == ""
    assert "blank caption" in str(error) and "--skip-bad" in str(error)


def test_rsicd_skip_bad_rejects_blank_captions_and_missing_images(
    roots: dict[str, Path],
) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records("rsicd", roots["rsicd"], log=log)
    assert sorted(records) == ["rsicd/test/bareland_1", "rsicd/train/airport_1", "rsicd/val/00433"]
    bare = records["rsicd/test/bareland_1"]
    assert bare.captions == [
        "It is a piece of bare land.",
        "A piece of yellow bare land.",
        "Bare land.",
    ]
    assert bare.meta["skipped_captions"] == 2
    assert [(p.reason, p.entry, p.value) for p in log.problems] == [
        ("blank caption", "images[2].sentences[2].raw", ""),
        ("blank caption", "images[2].sentences[4].raw", ""),
        (
            "image not found; its 5 captions are left out",
            "images[3].filename",
            "RSICD_images/beach_9.jpg",
        ),
    ]


def test_ucm_unpadded_tif_names_and_detached_periods(roots: dict[str, Path]) -> None:
    log = ProblemLog()
    records = _records("ucm-captions", roots["ucm-captions"], split="train", log=log)
    assert sorted(records) == ["ucm-captions/train/1", "ucm-captions/train/2"]
    farmland = records["ucm-captions/train/1"]
    assert farmland.image.path == "imgs/1.tif" and farmland.image.width == 32
    assert farmland.captions == [
        "There is a piece of farmland.",
        "There is a piece of cropland.",
        "It is a piece of farmland.",
    ]
    assert records["ucm-captions/train/2"].captions[0] == (
        "A residential area with houses arranged neatly 0."
    )
    assert log.counts["duplicate captions removed"] == 2
    assert log.counts["captions with a detached final period joined"] == 10


def test_ucm_sentence_without_raw_is_rejected(roots: dict[str, Path]) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records("ucm-captions", roots["ucm-captions"], split="test", log=log)
    assert records["ucm-captions/test/4"].captions == ["An airplane is stopped at the airport."]
    assert [(p.reason, p.entry) for p in log.problems] == [
        ("caption is missing or not a string", "images[3].sentences[1].raw")
    ]


def test_sydney_images_folder_and_an_image_listed_twice(roots: dict[str, Path]) -> None:
    clean = _records("sydney-captions", roots["sydney-captions"], split="train")
    assert clean["sydney-captions/train/1"].image.path == "images/1.tif"
    assert clean["sydney-captions/train/1"].captions == [
        "A residential area with many houses.",
        "Many houses.",
    ]
    log = ProblemLog(skip_bad=True)
    records = _records("sydney-captions", roots["sydney-captions"], log=log)
    assert sorted(records) == ["sydney-captions/train/1", "sydney-captions/val/2"]
    (problem,) = log.problems
    assert problem.reason == "image already listed at images[1]"
    assert problem.entry == "images[2].filename" and problem.value == "images/2.tif"


def test_rsitmd_blank_sentences_of_old_copies(roots: dict[str, Path]) -> None:
    train = _records("rsitmd", roots["rsitmd"], split="train")
    assert sorted(train) == ["rsitmd/train/baseballfield_452", "rsitmd/train/plane_1"]
    assert len(train["rsitmd/train/plane_1"].captions) == 5
    assert "keywords" not in train["rsitmd/train/plane_1"].meta  # unknown keys are ignored
    log = ProblemLog(skip_bad=True)
    boat = _records("rsitmd", roots["rsitmd"], split="test", log=log)["rsitmd/test/boat_3"]
    assert boat.captions == ["Boats are moored at the pier.", "Some boats."]
    assert [(p.entry, p.value) for p in log.problems] == [
        ("images[2].sentences[1].raw", ""),
        ("images[2].sentences[3].raw", "  "),
    ]


def test_nwpu_class_becomes_label_and_raw_keys_are_captions(roots: dict[str, Path]) -> None:
    log = ProblemLog()
    records = _records("nwpu-captions", roots["nwpu-captions"], split="train", log=log)
    plane = records["nwpu-captions/train/airplane_001"]
    assert plane.label == "airplane"
    assert plane.image.path == "NWPU_images/airplane/airplane_001.jpg"
    assert plane.captions == [
        "Two larger planes and a smaller plane parked on the open area.",
        "Two larger airplanes and one smaller airplane are parked at the airport.",
        "Three planes are parked on the concrete ground.",
        "There are three planes on the ground.",
    ]
    assert log.counts["duplicate captions removed"] == 1
    val = _records("nwpu-captions", roots["nwpu-captions"], split="val")
    assert list(val) == ["nwpu-captions/val/airplane_002"]


def test_nwpu_missing_image_and_blank_caption(roots: dict[str, Path]) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("nwpu-captions")(roots["nwpu-captions"], split="test").records())
    assert caught.value.entry == "airplane[2].filename"
    assert caught.value.value == "NWPU_images/airplane/airplane_111.jpg"
    log = ProblemLog(skip_bad=True)
    records = _records("nwpu-captions", roots["nwpu-captions"], split="test", log=log)
    assert list(records) == ["nwpu-captions/test/airport_001"]
    assert records["nwpu-captions/test/airport_001"].label == "airport"
    assert [p.entry for p in log.problems] == ["airplane[2].filename", "airport[0].raw_2"]


def test_unknown_split_lists_the_splits_in_the_file(roots: dict[str, Path]) -> None:
    with pytest.raises(InputError, match=r"no images with split 'trian'; .*: test, train, val"):
        list(get_converter("rsicd")(roots["rsicd"], split="trian").records())


def test_missing_json_names_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "RSICD_images").mkdir()
    with pytest.raises(InputError, match=r"no captions JSON \(dataset_rsicd.json\)"):
        list(get_converter("rsicd")(tmp_path).records())


def test_options_point_at_renamed_files(roots: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(roots["ucm-captions"], tmp_path)
    (root / "dataset.json").rename(root / "captions_ucm.json")
    (root / "imgs").rename(root / "pictures")
    options = {"annotations": "captions_ucm.json", "images": "pictures"}
    records = _records("ucm-captions", root, split="val", options=options)
    assert records["ucm-captions/val/3"].image.path == "pictures/3.tif"
    with pytest.raises(
        InputError, match="option images: no image folder there inside the dataset root"
    ):
        get_converter("ucm-captions")(root, options={"images": ".."}).image_folder  # noqa: B018


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "dataset_RSITMD.json").write_text('{"images": [\n{"filename": }\n]}')
    with pytest.raises(InputError) as caught:
        list(get_converter("rsitmd")(tmp_path).records())
    assert caught.value.file.endswith("dataset_RSITMD.json") and caught.value.line == 2


def test_nwpu_json_given_to_a_karpathy_converter(roots: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(roots["nwpu-captions"], tmp_path)
    options = {"annotations": "dataset_nwpu.json", "images": "NWPU_images"}
    with pytest.raises(InputError, match='Karpathy-style object with an "images" list'):
        list(get_converter("rsicd")(root, options=options).records())


def test_malformed_entries_and_names_escaping_the_folder(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "secret.tif").write_bytes(b"")
    for name in ("c.tif", "c.tiff"):
        shutil.copy(roots["rsitmd"] / "images/plane_1.tif", tmp_path / "images" / name)
    images = [
        "not an object",
        {"filename": "a.tif", "split": "train", "sentences": "A caption."},
        {"filename": "../secret.tif", "split": "train", "sentences": []},
        {"filename": "b.tif", "split": 3, "sentences": []},
        {"filename": "c.tif", "split": "train", "sentences": [{"raw": "One."}]},
        {"filename": "c.tiff", "split": "train", "sentences": [{"raw": "Two."}]},
    ]
    (tmp_path / "dataset_RSITMD.json").write_text(json.dumps({"images": images}))
    log = ProblemLog(skip_bad=True)
    assert list(_records("rsitmd", tmp_path, log=log)) == ["rsitmd/train/c"]
    assert [(p.reason, p.entry) for p in log.problems] == [
        ("image entry is not an object", "images[0]"),
        ("sentences must be a list", "images[1].sentences"),
        ("filename must stay inside the image folder", "images[2].filename"),
        ("split must be a non-empty string", "images[3].split"),
        ("record id rsitmd/train/c already used by images[4]", "images[5].filename"),
    ]


def test_clean_caption() -> None:
    assert clean_caption("  Many houses .\r\n") == "Many houses."
    assert clean_caption("Is it a port ?") == "Is it a port?"
    assert clean_caption("A. B .C") == "A. B .C"  # only the final mark moves
    assert clean_caption(" \t") == ""


@pytest.mark.parametrize(
    ("name", "records", "removed"),
    [
        ("rsicd", 1, 3),
        ("ucm-captions", 2, 2),
        ("sydney-captions", 1, 0),
        ("rsitmd", 2, 0),
        ("nwpu-captions", 1, 1),
    ],
)
def test_cli_convert(
    roots: dict[str, Path], tmp_path: Path, name: str, records: int, removed: int
) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", name, str(roots[name]), "-o", str(out), "--split", "train"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{records} records ({records} without object labels)")
    assert (f"duplicate captions removed: {removed}" in result.output) == bool(removed)
    written = list(read_jsonl(out, Record))
    assert len(written) == records and all(r.captions and r.split == "train" for r in written)


def test_cli_reports_the_blank_caption_and_exits_2(roots: dict[str, Path], tmp_path: Path) -> None:
    args = ["convert", "rsitmd", str(roots["rsitmd"]), "-o", str(tmp_path / "r.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "dataset_RSITMD.json [images[2].sentences[1].raw]: blank caption" in result.output
