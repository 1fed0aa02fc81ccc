"""Reading images with rasterio: header facts, and 8-bit RGB renderings of any band layout.

Only the header is read to describe an image, so describing a 20000-px DOTA v2.0 scene costs as
little as a thumbnail. Plain PNG/JPEG images have no georeferencing: their CRS and transform stay
None (never invented). :func:`read_rgb8` turns any raster (16-bit multispectral, one grey band,
a palette PNG) into the 8-bit RGB picture a vision model is shown.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from rsgpt4v.errors import InputError
from rsgpt4v.gsd import ground_sample_distance


@dataclass(frozen=True)
class RasterFacts:
    width: int
    height: int
    bands: int
    crs: str | None
    transform: list[float] | None
    gsd: float | None


# PIL mode → the band count GDAL reports, for the PNG/JPEG modes where the two agree. PIL opens a
# 16-bit grey+alpha PNG as RGBA and GDAL reads a CMYK JPEG as RGB: those modes go to rasterio.
_PIL_BANDS = {"1": 1, "L": 1, "P": 1, "I;16": 1, "LA": 2, "RGB": 3}
# Sidecars from which GDAL reads a CRS for a PNG or JPEG (PAM .aux.xml, ERDAS .aux, MapInfo .tab),
# named after the file name or its stem. World files alone give no CRS, so they need no check.
_SIDECARS_OF_NAME = (".aux.xml", ".aux", ".AUX")
_SIDECARS_OF_STEM = (".aux", ".AUX", ".tab", ".TAB")
_LIBPNG_MAX_SIDE = 1_000_000  # libpng, hence GDAL, refuses a PNG wider or taller than this

#: On every open GDAL lists the file's whole folder to look for its sidecar files (.aux.xml,
#: .msk, .ovr); in a dataset folder of thousands of images that listing costs more than reading
#: a small image (a 128-px PNG among 2,048: 2.2 ms a read with the listing, 0.5 ms without). With
#: this option GDAL looks each sidecar up by name instead and finds the same files.
GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}


def gdal_env() -> rasterio.Env:
    """A GDAL environment for a loop over many images: rasterio otherwise makes one per open."""
    return rasterio.Env(**GDAL_OPTIONS)


@contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.io.DatasetReader]:
    """``rasterio.open(path)`` inside :func:`gdal_env` unless a GDAL environment is active."""
    if rasterio.env.hasenv():
        with rasterio.open(path) as source:
            yield source
    else:
        with gdal_env(), rasterio.open(path) as source:
            yield source


_RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


def rgb_bands(source: rasterio.DatasetReader) -> list[int]:
    """The bands (1-based) shown as red, green and blue; one band for a grey or palette image.

    A file whose colour interpretation names a red, a green and a blue band (a BGR or BGRN
    GeoTIFF tagged so, or one tagged with ``rio edit-info --colorinterp``) is shown through
    those bands; any other image with three bands or more through bands 1-3, as GIS viewers do.
    """
    interpretation = list(source.colorinterp)
    if all(colour in interpretation for colour in _RGB):
        return [interpretation.index(colour) + 1 for colour in _RGB]
    return [1, 2, 3] if source.count >= 3 else [1]


def describe_raster(path: str | Path) -> RasterFacts:
    """Read the header of an image; raise InputError naming the file when it cannot be read.

    A plain PNG or JPEG is read with PIL, which opens a header several times faster than
    rasterio (a conversion describes every image of a dataset); anything else, or anything PIL
    refuses, is opened with rasterio, whose answer and errors are the reference.
    """
    return _plain_image_facts(Path(path)) or _rasterio_facts(path)


def _plain_image_facts(path: Path) -> RasterFacts | None:
    """Size and bands of a PNG/JPEG that nothing georeferences; None when rasterio must decide."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=("PNG", "JPEG")) as image:
                (width, height), bands = image.size, _PIL_BANDS.get(image.mode)
    except Exception:  # a shortcut only: rasterio reports what is unreadable, and why
        return None
    if bands is None or not (0 < width <= _LIBPNG_MAX_SIDE and 0 < height <= _LIBPNG_MAX_SIDE):
        return None
    name, stem = str(path), os.path.splitext(path)[0]
    sidecars = [name + s for s in _SIDECARS_OF_NAME] + [stem + s for s in _SIDECARS_OF_STEM]
    if any(os.path.exists(sidecar) for sidecar in sidecars):
        return None
    return RasterFacts(width, height, bands, crs=None, transform=None, gsd=None)


def _rasterio_facts(path: str | Path) -> RasterFacts:
    """Size, bands and georeferencing of any raster GDAL reads, or InputError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path) as source:
                crs = source.crs
                transform = source.transform
                georeferenced = crs is not None and not transform.is_identity
                crs_text = crs.to_string() if georeferenced else None
                gdal_transform = list(transform.to_gdal()) if georeferenced else None
                width, height = source.width, source.height
                return RasterFacts(
                    width=width,
                    height=height,
                    bands=source.count,
                    crs=crs_text,
                    transform=gdal_transform,
                    gsd=ground_sample_distance(crs_text, gdal_transform, width, height)
                    if crs_text and gdal_transform
                    else None,
                )
    except RasterioIOError as error:
        raise InputError(f"cannot read image: {error}", file=path) from None


def read_rgb8(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """The image as an 8-bit RGB array of shape (height, width, 3).

    Red, green and blue are the bands :func:`rgb_bands` picks (the file's own colour
    interpretation, else bands 1-3); an image with fewer than three bands is shown as grey from
    band 1 (a palette image through its colour map). 8-bit data is kept as is; other data types
    are stretched per band from the 2nd to the 98th percentile of the valid pixels (nodata and
    non-finite values are black), the usual display stretch of GIS viewers. With ``max_side``,
    an image whose longer side exceeds it is read decimated (``out_shape``, area averaging), so a
    large scene is never read whole into memory; its aspect ratio is kept.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path) as source:
                width, height = _fit_size(source.width, source.height, max_side)
                palette = source.count < 3 and source.colorinterp[0] == ColorInterp.palette
                indexes = rgb_bands(source)
                shrink = (width, height) != (source.width, source.height)
                data = source.read(
                    indexes,
                    out_shape=(len(indexes), height, width),
                    resampling=Resampling.average if shrink and not palette else Resampling.nearest,
                    masked=True,
                )
                colormap = source.colormap(1) if palette else None
    except RasterioIOError as error:
        raise InputError(f"cannot read image: {error}", file=path) from None
    if colormap is not None:
        lookup = np.zeros((256, 3), dtype=np.uint8)
        for index, colour in colormap.items():
            if 0 <= index < 256:
                lookup[index] = colour[:3]
        rgb = lookup[np.ma.filled(data[0], 0).astype(np.uint8)]
    else:
        bands = [_to_uint8(band) for band in data]
        rgb = np.stack(bands * 3 if len(bands) == 1 else bands, axis=-1)
    return np.ascontiguousarray(rgb)


def _fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so that the longer side is at most ``max_side``."""
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_uint8(band: np.ma.MaskedArray) -> np.ndarray:
    """One band to 0-255: 8-bit data unchanged, anything else by a 2-98 % percentile stretch."""
    invalid = np.ma.getmaskarray(band)
    if band.dtype == np.uint8:
        return np.where(invalid, 0, band.data).astype(np.uint8)
    values = band.data.astype(np.float64)
    invalid = invalid | ~np.isfinite(values)
    if invalid.all():
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = np.percentile(values[~invalid], (2, 98))
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    scaled = np.clip(np.where(invalid, 0, scaled), 0, 255)
    return np.rint(scaled).astype(np.uint8)


def pad_to_square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """The image centred on a square canvas, as LLaVA-1.5 shows it (``image_aspect_ratio: pad``).

    Used with ``square_pad``: box coordinates are then relative to this square, and training
    (rsgpt4v.finetune) pads the same way, with the image processor's mean colour.
    """
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas
