from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.converters.safe_xml import read_xml
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import obb_to_polygon, polygon_to_obb
from rsgpt4v.schema import Record
from tests.conftest import load_fixture_module

# The ship of HRSC2016 100000006.xml as mmrotate's test data copies it (format doc A6).
VERBATIM_SHIP = """<HRSC_Image>
  <HRSC_Objects>
    <HRSC_Object>
      <Object_ID>100000006</Object_ID>
      <Class_ID>100000013</Class_ID>
      <Object_NO>100000006</Object_NO>
      <truncated>0</truncated>
      <difficult>0</difficult>
      <box_xmin>119</box_xmin>
      <box_ymin>75</box_ymin>
      <box_xmax>587</box_xmax>
      <box_ymax>789</box_ymax>
      <mbox_cx>341.2143</mbox_cx>
      <mbox_cy>443.3325</mbox_cy>
      <mbox_w>778.4297</mbox_w>
      <mbox_h>178.2595</mbox_h>
      <mbox_ang>-1.122944</mbox_ang>
      <segmented>0</segmented>
      <seg_color>
      </seg_color>
      <header_x>143</header_x>
      <header_y>776</header_y>
    </HRSC_Object>
  </HRSC_Objects>
</HRSC_Image>
"""


@pytest.fixture(scope="module")
def hrsc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fixture = load_fixture_module("hrsc2016").make_fixture(tmp_path_factory.mktemp("hrsc"))
    return fixture / "HRSC2016"


def _records(root: Path, **kwargs) -> dict[str, Record]:
    return {r.id: r for r in get_converter("hrsc2016")(root, **kwargs).records()}


def test_train_records(hrsc_root: Path) -> None:
    records = _records(hrsc_root, split="train")
    assert sorted(records) == ["hrsc2016/train/100000001", "hrsc2016/train/100000002"]
    first = records["hrsc2016/train/100000001"]
    assert first.image.path == "FullDataSet/AllImages/100000001.bmp"
    assert (first.image.width, first.image.height, first.image.gsd) == (64, 48, 1.07)
    assert first.meta["Img_Location"] == "69.040297,33.070036"
    assert first.meta["Img_CusType"] == "sealand"
    assert "Img_Des" not in first.meta and "Img_SizeWidth" not in first.meta  # blank / in image


def test_rotated_box_becomes_a_polygon_and_hbb_comes_from_box(hrsc_root: Path) -> None:
    ship = _records(hrsc_root, split="train")["hrsc2016/train/100000001"].objects[0]
    assert ship.category == "Kuznetsov"
    assert ship.bbox == [12, 5, 26, 34]  # box_xmin…box_ymax, not the polygon's bounds
    expected = obb_to_polygon(25, 22, 36, 10, math.degrees(-1.0))
    assert np.allclose(ship.polygon, expected)
    cx, cy, w, h, angle = polygon_to_obb(ship.polygon)
    assert (cx, cy, w, h) == pytest.approx((25, 22, 36, 10))
    assert angle == pytest.approx(math.degrees(-1.0))
    assert shapely.Polygon(ship.polygon).contains(shapely.Point(ship.attributes["bow"]))
    assert ship.attributes == {"class_id": "100000013", "bow": [16, 36]}


def test_unknown_class_id_is_kept_as_written(hrsc_root: Path) -> None:
    ship = _records(hrsc_root, split="train")["hrsc2016/train/100000001"].objects[1]
    assert ship.category == "100000021" and ship.difficult is True
    assert np.allclose(ship.polygon, [[42, 36], [62, 36], [62, 44], [42, 44]])


def test_empty_hrsc_objects_is_a_labelled_empty_record(hrsc_root: Path) -> None:
    record = _records(hrsc_root, split="train")["hrsc2016/train/100000002"]
    assert record.objects == [] and record.labelled and "skipped_objects" not in record.meta


def test_hbb_past_the_edge_is_clipped_and_truncated_kept(hrsc_root: Path) -> None:
    ship = _records(hrsc_root, split="val")["hrsc2016/val/100000003"].objects[0]
    assert ship.category == "ship" and ship.bbox == [20, 30, 10, 18]
    assert ship.attributes["truncated"] is True


def test_one_class_option(hrsc_root: Path) -> None:
    records = _records(hrsc_root, split="train", options={"classes": "ship"})
    categories = {o.category for r in records.values() for o in r.objects}
    assert categories == {"ship"}
    with pytest.raises(InputError, match="option classes must be type or ship"):
        get_converter("hrsc2016")(hrsc_root, options={"classes": "all"})


def test_verbatim_ship_angle_direction(hrsc_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "100000006.xml"
    path.write_text(VERBATIM_SHIP)
    element = read_xml(path).find("HRSC_Objects/HRSC_Object")
    ship = get_converter("hrsc2016")(hrsc_root).read_object(element, path, "ship")
    assert ship.category == "Kuznetsov" and ship.box == (119, 75, 587, 789)
    polygon = shapely.Polygon(ship.polygon)
    bow = shapely.Point(143, 776)
    assert polygon.contains(bow)  # the bow lies inside the box, at one end of its long axis
    along = np.array([math.cos(-1.122944), math.sin(-1.122944)])  # direction of the w side
    offset = np.array([143 - 341.2143, 776 - 443.3325])
    assert abs(offset @ along) > 0.95 * 778.4297 / 2  # at the end of the long axis
    mirrored = obb_to_polygon(341.2143, 443.3325, 778.4297, 178.2595, math.degrees(1.122944))
    assert shapely.Polygon(mirrored).distance(bow) > 200  # the other sense misses the ship


def test_test_split_is_found_in_the_test_folder_and_errors_name_the_object(
    hrsc_root: Path,
) -> None:
    with pytest.raises(InputError) as caught:
        list(get_converter("hrsc2016")(hrsc_root, split="test").records())
    error = caught.value
    assert error.file.endswith("Test/Annotations/100000005.xml")
    assert error.entry == "/HRSC_Image/HRSC_Objects/HRSC_Object[1]" and error.value == "abc"


def test_skip_bad(hrsc_root: Path) -> None:
    log = ProblemLog(skip_bad=True)
    records = _records(hrsc_root, split="test", log=log)
    assert records["hrsc2016/test/100000004"].image.path == "Test/AllImages/100000004.bmp"
    assert records["hrsc2016/test/100000004"].objects[0].category == "Container"
    assert records["hrsc2016/test/100000005"].objects == []
    assert records["hrsc2016/test/100000005"].meta["skipped_objects"] == 2
    assert [(p.reason, p.entry) for p in log.problems] == [
        ("<mbox_ang> is not a number", "/HRSC_Image/HRSC_Objects/HRSC_Object[1]"),
        ("missing <mbox_w> in <HRSC_Object>", "/HRSC_Image/HRSC_Objects/HRSC_Object[2]"),
    ]


def test_trainval_is_read_only_when_asked(hrsc_root: Path) -> None:
    default = _records(hrsc_root, log=ProblemLog(skip_bad=True))
    assert {r.split for r in default.values()} == {"train", "val", "test"}
    trainval = _records(hrsc_root, split="trainval")
    assert len(trainval) == 3 and all(i.startswith("hrsc2016/trainval/") for i in trainval)


def test_cli_convert(hrsc_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", "hrsc2016", str(hrsc_root), "-o", str(out), "--split", "trainval"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 records (0 without object labels), 3 objects in 3 classes" in result.output
    result = CliRunner().invoke(app, ["convert", "hrsc2016", str(hrsc_root), "-o", str(out)])
    assert result.exit_code == 2 and "100000005.xml" in result.output
