"""The ground sample distance of georeferenced images: ground metres, not CRS units."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from rsgpt4v.gsd import ground_sample_distance
from rsgpt4v.instruct.rules.geographic import geo_frame
from rsgpt4v.raster import describe_raster
from rsgpt4v.schema import ImageInfo, Record


def _scene(path: Path, crs: str, transform: Affine, size: int = 200) -> Path:
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint8"}
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as target:
        target.write(np.zeros((1, size, size), dtype=np.uint8))
    return path


def _web_mercator_origin(lon: float, lat: float) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)


def test_utm_keeps_its_nominal_metres_per_pixel(tmp_path: Path) -> None:
    transform = Affine(0.5, 0, 500_000, 0, -0.5, 4_650_000)
    assert describe_raster(_scene(tmp_path / "u.tif", "EPSG:32633", transform)).gsd == 0.5


@pytest.mark.parametrize("lat", [0.0, 45.0, 60.0])
def test_web_mercator_metres_are_scaled_to_the_ground(tmp_path: Path, lat: float) -> None:
    """A "0.3 m" web-map pixel at 60° N covers about 0.15 m. EPSG:3857 puts WGS 84 latitude and
    longitude on a sphere of radius a: a step dx spans dx cos(φ) / sqrt(1 - e² sin²φ) metres
    along the parallel, a step dy spans dy cos(φ) (1 - e²) / (1 - e² sin²φ)^1.5 along the
    meridian; the GSD is the geometric mean of the two at the scene centre."""
    x0, y0 = _web_mercator_origin(10.0, lat)
    facts = describe_raster(
        _scene(tmp_path / "w.tif", "EPSG:3857", Affine(0.3, 0, x0, 0, -0.3, y0 + 30))
    )
    _, centre_lat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform(
        x0 + 30, y0
    )
    phi, e2 = math.radians(centre_lat), 0.00669437999014
    w = 1 - e2 * math.sin(phi) ** 2
    along_row = 0.3 * math.cos(phi) / math.sqrt(w)
    along_column = 0.3 * math.cos(phi) * (1 - e2) / w**1.5
    ground = math.sqrt(along_row * along_column)
    if lat == 0.0:  # within 1 % of true scale (0.299 m): the stated 0.3 m is kept
        assert ground == pytest.approx(0.3, rel=0.01) and facts.gsd == 0.3
    else:
        assert facts.gsd == pytest.approx(ground, rel=1e-5) and facts.gsd < 0.22


def test_degrees_give_metres_only_where_pixels_are_square_on_the_ground(tmp_path: Path) -> None:
    """1e-5° pixels: about 1.11 m at the equator; at 42° N a degree of longitude is 26 % shorter
    than one of latitude, so no one metres-per-pixel is true."""
    equator = _scene(tmp_path / "e.tif", "EPSG:4326", Affine(1e-5, 0, 15.0, 0, -1e-5, 0.001))
    assert describe_raster(equator).gsd == pytest.approx(1.1095, rel=1e-3)
    north = _scene(tmp_path / "n.tif", "EPSG:4326", Affine(1e-5, 0, 15.0, 0, -1e-5, 42.0))
    assert describe_raster(north).gsd is None


def test_unrelatable_crs_keeps_the_nominal_value_only_when_projected() -> None:
    site_grid = 'LOCAL_CS["site grid",UNIT["metre",1]]'
    assert ground_sample_distance(site_grid, [0, 0.5, 0, 0, 0, -0.5], 100, 100) is None


def test_geographic_areas_use_ground_metres_in_web_mercator() -> None:
    """A record without a GSD in EPSG:3857 at 60° N: area questions get a quarter of the
    CRS-unit area per pixel, as the ground has."""
    x0, y0 = _web_mercator_origin(10.0, 60.0)
    image = ImageInfo(
        path="w.tif", width=200, height=200, crs="EPSG:3857", transform=[x0, 0.3, 0, y0, 0, -0.3]
    )
    frame = geo_frame(Record(id="w/all/w", dataset="w", split="all", image=image))
    assert frame.pixel_area_m2 == pytest.approx(0.09 / 4, rel=0.01)
