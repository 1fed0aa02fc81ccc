from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module

fixture = load_fixture_module("voc")


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture.make_fixture(tmp_path_factory.mktemp("voc"))


def _convert(root: Path, **kwargs) -> tuple[dict[str, Record], ProblemLog]:
    log = kwargs.pop("log", ProblemLog())
    records = {r.id: r for r in get_converter("voc")(root, log=log, **kwargs).records()}
    return records, log


def test_voc_layout_with_split_files(voc_root: Path) -> None:
    records, log = _convert(voc_root / "voc-standard")
    assert list(records) == ["voc/train/a", "voc/train/b", "voc/val/c"]  # trainval not read
    a = records["voc/train/a"]
    assert a.image.path == "JPEGImages/a.jpg" and a.meta["annotation_file"] == "Annotations/a.xml"
    ship, plane = a.objects
    assert (ship.category, ship.bbox, ship.difficult) == ("ship", [10, 12, 20, 28], True)
    assert ship.attributes == {"truncated": True}
    assert plane.bbox == [50, 5, 14, 15]  # xmax 70 on a 64-px image: clipped
    assert records["voc/train/b"].image.path == "JPEGImages/b.png"
    assert records["voc/val/c"].objects == [] and records["voc/val/c"].meta["labelled"] is True
    assert log.problems == []
    only_val, _ = _convert(voc_root / "voc-standard", split="val")
    assert list(only_val) == ["voc/val/c"]


def test_labelimg_files_beside_their_images(voc_root: Path) -> None:
    with pytest.raises(InputError, match="is not a number") as raised:
        _convert(voc_root / "labelimg")
    assert raised.value.entry == "/annotation/object[2]" and raised.value.value == "left"
    log = ProblemLog(skip_bad=True)
    records, _ = _convert(voc_root / "labelimg", log=log, options={"dataset": "mine"})
    assert list(records) == ["mine/all/img1", "mine/all/sub/img2"]
    img2 = records["mine/all/sub/img2"]
    assert img2.image.path == "sub/img2.png" and img2.dataset == "mine"
    assert [o.bbox for o in img2.objects] == [[1, 1, 10, 10]]
    assert img2.meta["skipped_objects"] == 1 and len(log.problems) == 1
    with pytest.raises(InputError, match="the only split is 'all'"):
        _convert(voc_root / "labelimg", split="train")


def test_a_folder_without_labels_says_what_it_expects(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"no split files and no \*\.xml; expected ROOT/Annotations"
    ):
        _convert(tmp_path)


def _cli(root: Path, out: Path, *flags: str) -> Result:
    return CliRunner().invoke(app, ["convert", "voc", str(root), "-o", str(out), *flags])


def test_a_non_finite_corner_is_refused_naming_file_and_value(
    voc_root: Path, tmp_path: Path
) -> None:
    """``xmax=inf`` used to clip to the image edge and pass as a full-width box."""
    out = tmp_path / "records.jsonl"
    result = _cli(voc_root / "voc-bad" / "inf", out)
    assert result.exit_code == 2, result.output
    assert "inf.xml [/annotation/object[1]]" in result.output
    assert "object coordinates must be finite numbers, not inf" in result.output
    result = _cli(voc_root / "voc-bad" / "inf", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    (record,) = read_jsonl(out, Record)
    assert [(o.category, o.bbox) for o in record.objects] == [("car", [5, 5, 10, 5])]
    assert record.meta["skipped_objects"] == 1
    (reject,) = [json.loads(line) for line in rejects_path(out).open()]
    assert reject["file"].endswith("inf.xml") and reject["entry"] == "/annotation/object[1]"
    assert reject["value"] == "[10.0, 12.0, inf, 40.0]"


def test_a_size_that_contradicts_the_image_is_refused(voc_root: Path, tmp_path: Path) -> None:
    """The boxes are in the pixels of the size the XML declares: on another size they land
    wrong, so the image is rejected as COCO rejects a contradicting width/height."""
    out = tmp_path / "records.jsonl"
    result = _cli(voc_root / "voc-bad" / "resized", out)
    assert result.exit_code == 2, result.output
    assert "resized.xml [/annotation/size]" in result.output
    assert "the XML gives 128x96 but the image is 64x48" in result.output
    result = _cli(voc_root / "voc-bad", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert [r.id for r in read_jsonl(out, Record)] == ["voc/all/inf/inf"]
    rejects = [json.loads(line) for line in rejects_path(out).open()]
    assert [(Path(r["file"]).name, r["entry"], r["value"]) for r in rejects] == [
        ("inf.xml", "/annotation/object[1]", "[10.0, 12.0, inf, 40.0]"),
        ("resized.xml", "/annotation/size", "resized/resized.jpg"),
    ]


def test_size_zero_means_not_given(tmp_path: Path) -> None:
    """Tools that never opened the image write ``<width>0</width>``: no size to compare."""
    root = tmp_path / "zero"
    fixture.noise_image(root / "z.jpg", 40, 30, 8)
    xml = fixture.voc_xml("z.jpg", 0, 0, [("car", 1, 1, 9, 9, 0, 0)])
    fixture.write_text(root / "z.xml", xml)
    records, log = _convert(root)
    assert len(records["voc/all/z"].objects) == 1 and log.problems == []
