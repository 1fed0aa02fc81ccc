"""describe_raster: PNG/JPEG headers read with PIL say exactly what rasterio says."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from rsgpt4v.errors import InputError
from rsgpt4v.raster import _rasterio_facts, describe_raster, open_raster

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)

MAPINFO_TAB = """!table
!version 300
!charset WindowsLatin1

Definition Table
  File "{name}"
  Type "RASTER"
  (500000,4000000) (0,0) Label "Pt 1",
  (500015,4000000) (30,0) Label "Pt 2",
  (500000,3999990) (0,20) Label "Pt 3"
  CoordSys Earth Projection 8, 104, "m", 9, 0, 0.9996, 500000, 0
  Units "m"
"""


def _pil(name: str, image: Image.Image, **save: object):
    def write(folder: Path) -> Path:
        image.save(folder / name, **save)
        return folder / name

    return write


def _gdal_png(name: str, count: int):
    def write(folder: Path) -> Path:
        profile = {"driver": "PNG", "width": 30, "height": 20, "count": count, "dtype": "uint16"}
        with rasterio.open(folder / name, "w", **profile) as target:
            target.write(RNG.integers(0, 60000, (count, 20, 30), dtype=np.uint16))
        return folder / name

    return write


def _with_aux_xml(folder: Path) -> Path:
    path = _pil("geo.png", Image.fromarray(RGB))(folder)
    with rasterio.open(path, "r+") as target:  # GDAL keeps the CRS in geo.png.aux.xml
        target.crs = "EPSG:32632"
        target.transform = rasterio.Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    return path


def _with_tab(folder: Path) -> Path:
    path = _pil("geo.jpg", Image.fromarray(RGB))(folder)
    (folder / "geo.tab").write_text(MAPINFO_TAB.format(name=path.name))
    return path


def _with_world_file(folder: Path) -> Path:
    path = _pil("placed.png", Image.fromarray(RGB))(folder)
    (folder / "placed.pgw").write_text("0.5\n0\n0\n-0.5\n500000.25\n4000000.25\n")
    return path


def _jpeg_named_png(folder: Path) -> Path:
    shutil.move(_pil("a.jpg", Image.fromarray(RGB))(folder), folder / "a.png")
    return folder / "a.png"


IMAGES = {
    "rgb png": _pil("a.png", Image.fromarray(RGB)),
    "grey png": _pil("a.png", Image.fromarray(RGB[..., 0])),
    "1-bit png": _pil("a.png", Image.fromarray(RGB[..., 0] > 100)),
    "palette png with transparency": _pil(
        "a.png", Image.fromarray(RGB).convert("P"), transparency=0
    ),
    "grey+alpha png": _pil("a.png", Image.fromarray(RGB[..., :2], "LA")),
    "rgba png": _pil("a.png", Image.fromarray(RGB).convert("RGBA")),
    "16-bit grey png": _pil("a.png", Image.fromarray(RGB[..., 0].astype(np.uint16) * 200)),
    "16-bit rgb png": _gdal_png("a.png", 3),
    "16-bit grey+alpha png (RGBA in PIL)": _gdal_png("a.png", 2),
    "rgb jpeg": _pil("a.jpg", Image.fromarray(RGB)),
    "grey jpeg": _pil("a.jpg", Image.fromarray(RGB[..., 0])),
    "cmyk jpeg (RGB in GDAL)": _pil("a.jpg", Image.fromarray(RGB).convert("CMYK")),
    "jpeg named .png": _jpeg_named_png,
    "tiff": _pil("a.tif", Image.fromarray(RGB)),
    "png georeferenced by .aux.xml": _with_aux_xml,
    "jpeg georeferenced by .tab": _with_tab,
}


@pytest.mark.parametrize("kind", IMAGES)
def test_facts_equal_rasterio(kind: str, tmp_path: Path) -> None:
    path = IMAGES[kind](tmp_path)
    assert describe_raster(path) == _rasterio_facts(path)


def test_sidecar_georeferencing_is_kept(tmp_path: Path) -> None:
    assert describe_raster(_with_aux_xml(tmp_path)).crs == "EPSG:32632"
    assert describe_raster(_with_tab(tmp_path)).crs == "EPSG:32632"


@pytest.mark.parametrize("write", [_with_aux_xml, _with_tab, _with_world_file])
def test_sidecars_are_found_with_gdal_folder_listings_off(write, tmp_path: Path) -> None:
    """Rasters are opened without GDAL's listing of their folder (raster.GDAL_OPTIONS), which
    costs more than a small image in a folder of thousands; sidecars are found all the same."""
    path = write(tmp_path)

    def georeferencing() -> tuple:
        with open_raster(path) as source:
            return source.crs, source.transform

    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):  # GDAL's default: list the folder
        listed = georeferencing()
    assert not listed[1].is_identity  # the sidecar placed the image
    assert georeferencing() == listed


@pytest.mark.parametrize(
    "damage",
    [
        lambda png: png[:33],  # ends after the header chunk
        lambda png: png[:20] + bytes([png[20] ^ 0xFF]) + png[21:],  # header checksum wrong
        lambda png: b"",
    ],
)
def test_damaged_png_is_reported_as_rasterio_reports_it(damage, tmp_path: Path) -> None:
    good = _pil("good.png", Image.fromarray(RGB))(tmp_path)
    path = tmp_path / "bad.png"
    path.write_bytes(damage(good.read_bytes()))
    with pytest.raises(InputError) as ours:
        describe_raster(path)
    with pytest.raises(InputError) as reference:
        _rasterio_facts(path)
    assert str(ours.value) == str(reference.value) and "cannot read image" in str(ours.value)


def test_png_wider_than_libpng_allows_is_refused(tmp_path: Path) -> None:
    path = _pil("wide.png", Image.new("L", (1_000_001, 1)))(tmp_path)
    with pytest.raises(InputError, match="cannot read image"):
        describe_raster(path)


@pytest.mark.parametrize(
    "kind", ["rgb png", "grey png", "palette png with transparency", "rgb jpeg"]
)
def test_plain_png_and_jpeg_headers_are_read_without_rasterio(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = IMAGES[kind](tmp_path)
    expected = _rasterio_facts(path)
    monkeypatch.setattr(rasterio, "open", None)  # any rasterio open would now fail
    assert describe_raster(path) == expected
