"""Write toy GeoTIFF scenes with GIS vector labels, as an analyst would have them.

Run ``python tests/data/geo/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.
Every label is first placed in pixels (``PIXEL_LABELS``), then moved to map coordinates with the
scene's geotransform and to the file's CRS with pyproj, so a test can check that the converter
brings it back to the same pixels.

- ``OUT/geo/``: UTM 33N scenes (0.5 m). ``scenes/utm_a.tif`` + ``utm_a.geojson`` in EPSG:4326
  (lon/lat): a quad, a MultiPolygon, a polygon past the right edge, a polygon with a hole and a
  ``name``, a self-crossing "bowtie" ring. ``scenes/utm_b.tif`` + ``utm_b.shp`` in EPSG:3857.
  ``scenes/utm_c.tif`` + ``utm_c.gpkg`` in EPSG:4326 with the class in ``category``.
  ``nested/utm_a.tif``: same stem in another folder, no labels.
- ``OUT/geo-shared/``: ``west.tif`` and ``east.tif`` side by side and one ``labels.gpkg`` for
  both: a feature across the seam, one on each scene, one on neither.
- ``OUT/geo-bad/<case>/``: one problem each: ``shapes`` (point, line, null geometry, no class),
  ``nocrs`` (Shapefile without .prj), ``noclass`` (no class column), ``outside`` (a feature off
  the scene).
- ``OUT/geo-nonfinite/scene.tif`` + ``scene.geojson`` (written as text: GeoJSON has no NaN, but
  GDAL reads ``NaN`` and ``Infinity``): a good building, then a corner that is ``NaN``,
  ``Infinity``, ``1e300``, and a latitude of 91 (finite in the file, infinite once in UTM).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

SCENE_CRS = "EPSG:32633"
GSD = 0.5
ORIGIN = (500000.0, 4650000.0)  # upper-left corner of utm_a, metres

# (class, rings) in pixels of utm_a; several rings = a MultiPolygon, ("hole", …) = an interior
PIXEL_LABELS: dict[str, list[tuple[str, list[list[list[float]]]]]] = {
    "quad": [("building", [[[10, 5], [30, 5], [30, 15], [10, 15]]])],
    "multi": [
        ("tree", [[[40, 20], [50, 20], [50, 30], [40, 30]], [[5, 30], [15, 30], [15, 40], [5, 40]]])
    ],
    "edge": [("car", [[[55.5, 10.25], [70, 10.25], [70, 20], [55.5, 20]]])],
    "bowtie": [("tent", [[[44, 2], [52, 10], [52, 2], [44, 10]]])],
}
POND = [[20, 25], [35, 25], [35, 40], [20, 40]]
POND_HOLE = [[25, 30], [30, 30], [30, 35], [25, 35]]


def scene_transform(x: float = 0.0, y: float = 0.0) -> Affine:
    """The geotransform of a scene whose top-left pixel is (x, y) in utm_a's pixel grid."""
    return Affine(GSD, 0.0, ORIGIN[0] + x * GSD, 0.0, -GSD, ORIGIN[1] - y * GSD)


def write_scene(path: Path, width: int, height: int, transform: Affine, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (3, height, width), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", crs=SCENE_CRS, transform=transform, **profile) as scene:
        scene.write(pixels)


def to_map(ring: list[list[float]], transform: Affine, crs: str) -> list[tuple[float, float]]:
    """Pixel corners → scene CRS (geotransform) → crs (pyproj, x/y = lon/lat order)."""
    project = Transformer.from_crs(SCENE_CRS, crs, always_xy=True)
    return [project.transform(*(transform @ (x, y))) for x, y in ring]


def polygon(rings: list[list[list[float]]], transform: Affine, crs: str):
    shapes = [Polygon(to_map(ring, transform, crs)) for ring in rings]
    return shapes[0] if len(shapes) == 1 else MultiPolygon(shapes)


def write_labels(path: Path, rows: list[dict], crs: str | None, **kwargs: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the file without a CRS is meant to lack one
        warnings.filterwarnings("ignore", "'crs' was not provided")
        gpd.GeoDataFrame(rows, geometry="geometry", crs=crs).to_file(path, **kwargs)


def make_clean(root: Path) -> None:
    scenes = root / "geo" / "scenes"
    transform = scene_transform()
    for name in ("utm_a", "utm_b", "utm_c"):
        write_scene(scenes / f"{name}.tif", 64, 48, transform, seed=len(name))
    write_scene(root / "geo" / "nested" / "utm_a.tif", 32, 32, transform, seed=9)
    rows = [
        {"class": cls, "name": None, "geometry": polygon(rings, transform, "EPSG:4326")}
        for labels in PIXEL_LABELS.values()
        for cls, rings in labels
    ]
    pond = Polygon(
        to_map(POND, transform, "EPSG:4326"), [to_map(POND_HOLE, transform, "EPSG:4326")]
    )
    rows.append({"class": "pond", "name": "north pond", "geometry": pond})
    write_labels(scenes / "utm_a.geojson", rows, "EPSG:4326", driver="GeoJSON")
    quad = PIXEL_LABELS["quad"][0][1]
    write_labels(
        scenes / "utm_b.shp",
        [{"class": "building", "geometry": polygon(quad, transform, "EPSG:3857")}],
        "EPSG:3857",
    )
    multi = PIXEL_LABELS["multi"][0][1]
    write_labels(
        scenes / "utm_c.gpkg",
        [{"category": 7, "geometry": polygon(multi, transform, "EPSG:4326")}],
        "EPSG:4326",
        driver="GPKG",
    )


def make_shared(root: Path) -> None:
    folder = root / "geo-shared"
    write_scene(folder / "west.tif", 32, 32, scene_transform(0, 0), seed=1)
    write_scene(folder / "east.tif", 32, 32, scene_transform(32, 0), seed=2)
    grid = scene_transform()  # west's pixel grid; east starts at x = 32
    features = [
        ("road", [[24, 10], [40, 10], [40, 14], [24, 14]]),  # across the seam
        ("car", [[4, 4], [10, 4], [10, 8], [4, 8]]),  # west
        ("car", [[50, 20], [56, 20], [56, 24], [50, 24]]),  # east
        ("ship", [[200, 200], [210, 200], [210, 210], [200, 210]]),  # on no scene
    ]
    rows = [{"class": c, "geometry": polygon([r], grid, "EPSG:4326")} for c, r in features]
    write_labels(folder / "labels.gpkg", rows, "EPSG:4326", driver="GPKG")


def make_bad(root: Path) -> None:
    bad = root / "geo-bad"
    transform = scene_transform()
    for case in ("shapes", "nocrs", "noclass", "outside"):
        write_scene(bad / case / f"{case}.tif", 32, 32, transform)
    box = PIXEL_LABELS["quad"][0][1]
    good = polygon(box, transform, "EPSG:4326")
    lon, lat = to_map([[5, 5]], transform, "EPSG:4326")[0]
    rows = [
        {"class": "building", "geometry": good},
        {"class": "well", "geometry": Point(lon, lat)},
        {"class": "fence", "geometry": LineString([(lon, lat), (lon + 1e-5, lat)])},
        {"class": "building", "geometry": None},
        {"class": None, "geometry": good},
    ]
    write_labels(bad / "shapes" / "shapes.geojson", rows, "EPSG:4326", driver="GeoJSON")
    write_labels(
        bad / "nocrs" / "nocrs.shp",
        [{"class": "building", "geometry": polygon(box, transform, SCENE_CRS)}],
        None,
    )
    write_labels(
        bad / "noclass" / "noclass.geojson",
        [{"label": "building", "name": "a", "geometry": good}],
        "EPSG:4326",
        driver="GeoJSON",
    )
    far = polygon([[[500, 500], [510, 500], [510, 510], [500, 510]]], transform, "EPSG:4326")
    write_labels(
        bad / "outside" / "outside.geojson",
        [{"class": "building", "geometry": good}, {"class": "ship", "geometry": far}],
        "EPSG:4326",
        driver="GeoJSON",
    )


NON_FINITE = ("NaN", "Infinity", "1e300", "LAT91")


def make_nonfinite(root: Path) -> None:
    folder = root / "geo-nonfinite"
    transform = scene_transform()
    write_scene(folder / "scene.tif", 32, 32, transform)
    ring = [list(p) for p in to_map(PIXEL_LABELS["quad"][0][1][0], transform, "EPSG:4326")]
    features = [("building", [*ring, ring[0]])]
    for bad in NON_FINITE:
        broken = [list(p) for p in [*ring, ring[0]]]
        broken[1] = [broken[1][0], 91.0] if bad == "LAT91" else [bad, broken[1][1]]
        features.append(("ship", broken))
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"class": cls},
                "geometry": {"type": "Polygon", "coordinates": [coordinates]},
            }
            for cls, coordinates in features
        ],
    }
    text = json.dumps(collection)
    for bad in NON_FINITE[:3]:  # json.dumps quotes them; GDAL reads them bare
        text = text.replace(f'"{bad}"', bad)
    (folder / "scene.geojson").write_text(text)


def make_fixture(root: Path) -> Path:
    root = Path(root)
    make_clean(root)
    make_shared(root)
    make_bad(root)
    make_nonfinite(root)
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "geo-fixture")))
