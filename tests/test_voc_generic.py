from __future__ import annotations

from pathlib import Path

import pytest

from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record
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
