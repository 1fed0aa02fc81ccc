from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import Record, read_jsonl
from tests.conftest import load_fixture_module

fixture = load_fixture_module("geo")


@pytest.fixture(scope="module")
def geo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture.make_fixture(tmp_path_factory.mktemp("geo"))


def _convert(root: Path, **kwargs) -> tuple[dict[str, Record], ProblemLog]:
    log = kwargs.pop("log", ProblemLog())
    records = {r.id: r for r in get_converter("geo")(root, log=log, **kwargs).records()}
    return records, log


def _close(polygon: list[list[float]], expected: list[list[float]]) -> bool:
    """Same corners in the same order, within 0.01 px."""
    return np.allclose(np.asarray(polygon), np.asarray(expected, dtype=float), atol=0.01)


def test_lonlat_labels_land_on_their_utm_pixels(geo_root: Path) -> None:
    scene = _convert(geo_root / "geo")[0]["geo/all/scenes/utm_a"]
    assert scene.image.path == "scenes/utm_a.tif"
    assert scene.image.crs == "EPSG:32633" and scene.image.gsd == pytest.approx(0.5)
    assert scene.image.transform == list(fixture.scene_transform().to_gdal())
    assert scene.meta["label_crs"] == "EPSG:4326"
    assert scene.meta["label_file"] == "scenes/utm_a.geojson"
    building = scene.objects[0]
    assert building.category == "building"
    assert _close(building.polygon, fixture.PIXEL_LABELS["quad"][0][1][0])
    assert building.bbox == pytest.approx([10, 5, 20, 10], abs=0.01)


def test_feature_past_the_edge_keeps_its_polygon_and_clips_its_box(geo_root: Path) -> None:
    scene = _convert(geo_root / "geo")[0]["geo/all/scenes/utm_a"]
    (car,) = [o for o in scene.objects if o.category == "car"]
    assert _close(car.polygon, fixture.PIXEL_LABELS["edge"][0][1][0])  # reaches x = 70
    assert car.bbox == pytest.approx([55.5, 10.25, 8.5, 9.75], abs=0.01)  # 64-px scene


def test_multipolygon_gives_one_object_per_part(geo_root: Path) -> None:
    records, log = _convert(geo_root / "geo")
    trees = [o for o in records["geo/all/scenes/utm_a"].objects if o.category == "tree"]
    rings = fixture.PIXEL_LABELS["multi"][0][1]
    assert [t.attributes["part"] for t in trees] == [0, 1]
    assert {t.attributes["feature"] for t in trees} == {1}
    assert all(_close(t.polygon, ring) for t, ring in zip(trees, rings, strict=True))
    assert [o.id for o in records["geo/all/scenes/utm_a"].objects] == list(range(7))
    assert log.counts["objects from multi-part features"] == 6  # tree 2, tent 2, utm_c 2


def test_self_crossing_ring_is_repaired_into_its_two_triangles(geo_root: Path) -> None:
    scene = _convert(geo_root / "geo")[0]["geo/all/scenes/utm_a"]
    tents = [o for o in scene.objects if o.category == "tent"]
    assert len(tents) == 2 and all(len(t.polygon) == 3 for t in tents)
    assert sorted(t.bbox[0] for t in tents) == pytest.approx([44, 48], abs=0.01)


def test_hole_is_counted_and_attributes_are_kept(geo_root: Path) -> None:
    scene = _convert(geo_root / "geo")[0]["geo/all/scenes/utm_a"]
    (pond,) = [o for o in scene.objects if o.category == "pond"]
    assert _close(pond.polygon, fixture.POND)
    assert pond.attributes == {"feature": 4, "holes": 1, "name": "north pond"}
    building = scene.objects[0]
    assert "name" not in building.attributes  # a null attribute is left out, not "None"


def test_shapefile_in_web_mercator(geo_root: Path) -> None:
    scene = _convert(geo_root / "geo")[0]["geo/all/scenes/utm_b"]
    assert scene.meta["label_file"] == "scenes/utm_b.shp" and scene.meta["label_crs"] == "EPSG:3857"
    (building,) = scene.objects
    assert _close(building.polygon, fixture.PIXEL_LABELS["quad"][0][1][0])


def test_geopackage_with_numeric_category_column(geo_root: Path) -> None:
    scene = _convert(geo_root / "geo")[0]["geo/all/scenes/utm_c"]
    assert [o.category for o in scene.objects] == ["7", "7"]
    rings = fixture.PIXEL_LABELS["multi"][0][1]
    assert all(_close(o.polygon, r) for o, r in zip(scene.objects, rings, strict=True))


def test_same_stem_in_two_folders_and_a_scene_without_labels(geo_root: Path) -> None:
    records, log = _convert(geo_root / "geo")
    assert sorted(records) == [
        "geo/all/nested/utm_a",
        "geo/all/scenes/utm_a",
        "geo/all/scenes/utm_b",
        "geo/all/scenes/utm_c",
    ]
    nested = records["geo/all/nested/utm_a"]
    assert nested.objects == [] and nested.labelled is False
    assert [Path(w.file).name for w in log.warnings] == ["utm_a.tif"]


def test_one_label_file_for_several_scenes(geo_root: Path) -> None:
    records, log = _convert(geo_root / "geo-shared", options={"labels": "labels.gpkg"})
    west, east = records["geo/all/west"], records["geo/all/east"]
    assert [o.category for o in west.objects] == ["road", "car"]
    assert [o.category for o in east.objects] == ["road", "car"]
    road_west, road_east = west.objects[0], east.objects[0]
    assert _close(road_west.polygon, [[24, 10], [40, 10], [40, 14], [24, 14]])
    assert _close(road_east.polygon, [[-8, 10], [8, 10], [8, 14], [-8, 14]])  # east starts at 32
    assert road_west.bbox == pytest.approx([24, 10, 8, 4], abs=0.01)
    assert road_east.bbox == pytest.approx([0, 10, 8, 4], abs=0.01)
    assert east.objects[1].bbox == pytest.approx([18, 20, 6, 4], abs=0.01)
    assert log.counts["label features on no scene"] == 1
    assert "features[3]" in log.warnings[0].reason and log.problems == []


def test_labels_option_takes_a_path_from_the_current_folder(geo_root: Path) -> None:
    path = str(geo_root / "geo-shared" / "labels.gpkg")
    records, _ = _convert(geo_root / "geo-shared", options={"labels": path})
    assert len(records["geo/all/west"].objects) == 2
    with pytest.raises(InputError, match="labels file not found"):
        _convert(geo_root / "geo-shared", options={"labels": "missing.gpkg"})


@pytest.mark.parametrize(
    ("case", "message", "entry"),
    [
        ("shapes", "Point feature has no outline to box", "features[1]"),
        ("outside", "feature lies outside its 32x32 scene", "features[1]"),
        ("nocrs", "vector file has no CRS", None),
        ("noclass", "no class column 'class' or 'category'", None),
    ],
)
def test_each_problem_stops_the_run_naming_file_and_feature(
    geo_root: Path, case: str, message: str, entry: str | None
) -> None:
    with pytest.raises(InputError, match=message) as raised:
        _convert(geo_root / "geo-bad" / case)
    assert Path(raised.value.file).parent.name == case
    assert raised.value.entry == entry


def test_missing_class_column_lists_the_columns(geo_root: Path) -> None:
    with pytest.raises(InputError, match="the columns are: label, name"):
        _convert(geo_root / "geo-bad" / "noclass")
    with pytest.raises(InputError, match="the columns are: label, name"):
        _convert(geo_root / "geo-bad" / "noclass", options={"category_field": "kind"})


def test_shapefile_without_prj_says_so(geo_root: Path) -> None:
    with pytest.raises(InputError, match=r"\.prj"):
        _convert(geo_root / "geo-bad" / "nocrs")


def test_category_field_option(geo_root: Path) -> None:
    records, _ = _convert(geo_root / "geo-bad" / "noclass", options={"category_field": "label"})
    (building,) = records["geo/all/noclass"].objects
    assert building.category == "building" and building.attributes["name"] == "a"


def test_skip_bad_lists_every_reject_and_keeps_the_rest(geo_root: Path) -> None:
    records, log = _convert(geo_root / "geo-bad", log=ProblemLog(skip_bad=True))
    assert sorted(records) == ["geo/all/outside/outside", "geo/all/shapes/shapes"]
    assert [o.category for o in records["geo/all/shapes/shapes"].objects] == ["building"]
    assert [o.category for o in records["geo/all/outside/outside"].objects] == ["building"]
    found = {(Path(p.file).name, p.entry, p.reason.split(" (")[0]) for p in log.problems}
    assert found == {
        ("noclass.geojson", None, "no class column 'class' or 'category'"),
        (
            "nocrs.shp",
            None,
            "vector file has no CRS, so its coordinates cannot be placed on a scene",
        ),
        ("outside.geojson", "features[1]", "feature lies outside its 32x32 scene"),
        (
            "shapes.geojson",
            "features[1]",
            "Point feature has no outline to box; buffer it into a polygon in your GIS",
        ),
        (
            "shapes.geojson",
            "features[2]",
            "LineString feature has no outline to box; buffer it into a polygon in your GIS",
        ),
        ("shapes.geojson", "features[3]", "feature has an empty geometry"),
        ("shapes.geojson", "features[4]", "feature has no 'class' value"),
    }


def test_convert_through_the_cli(geo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    runner = CliRunner()
    args = ["convert", "geo", str(geo_root / "geo-shared"), "-o", str(out)]
    result = runner.invoke(app, [*args, "-O", "labels=labels.gpkg", "-O", "category_field=class"])
    assert result.exit_code == 0, result.output
    assert "2 records (0 without object labels), 4 objects in 2 classes" in result.output
    assert "label features on no scene: 1" in result.output
    first = json.loads(out.read_text().splitlines()[0])
    assert first["image"]["crs"] == "EPSG:32633" and len(first["image"]["transform"]) == 6
    assert [r.id for r in read_jsonl(out, Record)] == ["geo/all/east", "geo/all/west"]
    result = runner.invoke(app, ["convert", "geo", str(geo_root / "geo-bad"), "-o", str(out)])
    assert result.exit_code == 2 and "noclass.geojson" in result.output


def test_category_field_flag_on_the_command_line(geo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    args = ["convert", "geo", str(geo_root / "geo-bad" / "noclass"), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--category-field", "label"])
    assert result.exit_code == 0, result.output
    assert '"category":"building"' in out.read_text()


def test_layer_option_picks_a_layer_of_a_geopackage(geo_root: Path, tmp_path: Path) -> None:
    """A GeoPackage of two layers: the first is read with a warning naming both, ``-O layer``
    reads the other, and an unknown name lists the layers there are."""
    import shutil

    import geopandas as gpd

    root = tmp_path / "shared"
    shutil.copytree(geo_root / "geo-shared", root)
    labels = root / "labels.gpkg"
    first = gpd.read_file(labels)
    only_cars = first[first["class"] == "car"].assign(**{"class": "vehicle"})
    only_cars.to_file(labels, layer="vehicles", driver="GPKG")
    records, log = _convert(root, options={"labels": "labels.gpkg"})
    assert [o.category for o in records["geo/all/west"].objects] == ["road", "car"]
    assert any("2 layers (labels, vehicles)" in w.reason for w in log.warnings)
    records, log = _convert(root, options={"labels": "labels.gpkg", "layer": "vehicles"})
    assert [o.category for o in records["geo/all/west"].objects] == ["vehicle"]
    assert not any("layers" in w.reason for w in log.warnings)
    with pytest.raises(InputError, match=r"no layer 'roads' .*the layers are: labels, vehicles"):
        _convert(root, options={"labels": "labels.gpkg", "layer": "roads"})


def test_non_finite_or_huge_coordinates_reject_the_feature_not_the_scene(
    geo_root: Path, tmp_path: Path
) -> None:
    """NaN, Infinity and 1e300 used to crash GEOS with a traceback, even under --skip-bad; a
    latitude of 91 is finite in the file and infinite once reprojected to UTM."""
    root, out = geo_root / "geo-nonfinite", tmp_path / "records.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["convert", "geo", str(root), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "scene.geojson [features[1]]: feature coordinates must be finite numbers, not nan" in (
        " ".join(result.output.split())
    )
    result = runner.invoke(app, ["convert", "geo", str(root), "-o", str(out), "--skip-bad"])
    assert result.exit_code == 0, result.output
    (scene,) = read_jsonl(out, Record)
    assert [o.category for o in scene.objects] == ["building"]
    rejects = [json.loads(line) for line in rejects_path(out).open()]
    assert [(r["entry"], r["reason"].split(",")[0]) for r in rejects] == [
        ("features[1]", "feature coordinates must be finite numbers"),
        ("features[2]", "feature coordinates must be finite numbers"),
        ("features[3]", "feature coordinates must lie within ±1"),
        ("features[4]", "once placed on the scene"),
    ]
    assert "not inf" in rejects[1]["reason"] and "not 1e+300" in rejects[2]["reason"]
    assert "pixel coordinates must be finite" in rejects[3]["reason"]
    assert all(r["file"].endswith("scene.geojson") for r in rejects)
