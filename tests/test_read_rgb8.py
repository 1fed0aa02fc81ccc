"""read_rgb8: any band layout to the 8-bit RGB picture a vision model is shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp

from rsgpt4v.errors import InputError
from rsgpt4v.raster import read_rgb8

BGRN = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]


def _write(path: Path, data: np.ndarray, nodata: float | None = None) -> Path:
    count, height, width = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=data.dtype,
        nodata=nodata,
    ) as target:
        target.write(data)
    return path


def test_8bit_rgb_is_kept_exactly(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, (3, 20, 30), dtype=np.uint8)
    rgb = read_rgb8(_write(tmp_path / "a.tif", data))
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3)
    assert np.array_equal(rgb, data.transpose(1, 2, 0))


def test_an_external_mask_file_is_found_with_gdal_folder_listings_off(tmp_path: Path) -> None:
    """read_rgb8 opens files without GDAL's folder listing (raster.GDAL_OPTIONS): sidecars such
    as a .msk mask must still be found, as with GDAL's default."""
    data = np.full((3, 8, 8), 200, dtype=np.uint8)
    path = _write(tmp_path / "m.tif", data)
    keep = np.eye(8, dtype=bool)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(path, "r+") as target:
        target.write_mask(keep.astype(np.uint8) * 255)
    assert (tmp_path / "m.tif.msk").exists()
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):  # GDAL's default
        listed = read_rgb8(path)
    rgb = read_rgb8(path)
    assert np.array_equal(rgb, listed)
    assert (rgb[keep] == 200).all() and (rgb[~keep] == 0).all()


def test_16bit_multispectral_uses_bands_1_to_3_stretched_per_band(tmp_path: Path) -> None:
    ramp = np.arange(100, dtype=np.uint16).reshape(10, 10) * 40 + 1000
    data = np.stack([ramp, ramp * 2, ramp + 5, np.full_like(ramp, 9)])
    data[:, 0, 0] = 0  # nodata: black, and left out of the percentiles
    rgb = read_rgb8(_write(tmp_path / "ms.tif", data, nodata=0))
    assert rgb.shape == (10, 10, 3) and tuple(rgb[0, 0]) == (0, 0, 0)
    for band in range(3):
        values = rgb[..., band].ravel()[1:]
        assert values.min() == 0 and values.max() == 255
        assert np.all(np.diff(values.astype(int)) >= 0)  # the ramp stays a ramp


def test_one_band_is_grey(tmp_path: Path) -> None:
    data = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    rgb = read_rgb8(_write(tmp_path / "ndvi.tif", data))
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255


def test_palette_image_is_shown_in_its_colours(tmp_path: Path) -> None:
    picture = Image.new("P", (4, 2))
    picture.putpalette([0, 0, 0, 200, 30, 10, 20, 220, 40] + [0] * (256 * 3 - 9))
    picture.putdata([1, 1, 2, 2, 0, 1, 2, 0])
    picture.save(tmp_path / "p.png")
    rgb = read_rgb8(tmp_path / "p.png")
    assert tuple(rgb[0, 0]) == (200, 30, 10) and tuple(rgb[0, 2]) == (20, 220, 40)
    assert tuple(rgb[1, 0]) == (0, 0, 0)


def test_max_side_reads_a_decimated_image_with_its_aspect_ratio(tmp_path: Path) -> None:
    data = np.zeros((3, 60, 100), dtype=np.uint8)
    data[:, :, 50:] = 200
    rgb = read_rgb8(_write(tmp_path / "big.tif", data), max_side=50)
    assert rgb.shape == (30, 50, 3)
    assert np.all(rgb[:, :25] == 0) and np.all(rgb[:, 25:] == 200)
    assert read_rgb8(tmp_path / "big.tif", max_side=500).shape == (60, 100, 3)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.tif").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"broken\.tif: cannot read image"):
        read_rgb8(tmp_path / "broken.tif")


def test_bands_the_file_tags_red_green_and_blue_are_shown_as_such(tmp_path: Path) -> None:
    """A BGRN GeoTIFF (PlanetScope-style band order) tagged so is shown in true colour; an
    untagged one falls back to bands 1-3, as GIS viewers do."""
    data = np.random.default_rng(1).integers(0, 256, (4, 6, 5), dtype=np.uint8)
    tagged = _write(tmp_path / "bgrn.tif", data)
    with rasterio.open(tagged, "r+") as target:
        target.colorinterp = BGRN
    assert np.array_equal(read_rgb8(tagged), data[[2, 1, 0]].transpose(1, 2, 0))
    untagged = read_rgb8(_write(tmp_path / "plain.tif", data))
    assert np.array_equal(untagged, data[:3].transpose(1, 2, 0))
