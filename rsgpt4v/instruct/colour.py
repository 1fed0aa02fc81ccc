"""The dominant colour of an object, named from the pixels inside its polygon.

The rule, so that a stated colour can be checked:

1. The object's window is read with rasterio (decimated by nearest-neighbour sampling so that its
   longer side is at most ``SAMPLE_SIDE`` pixels); pixels whose centre lies inside the polygon (the
   ``bbox`` without one) and that are not nodata are kept.
2. 8-bit data is used as is. Other data types are stretched linearly from the 2nd to the 98th
   percentile of the image's valid values (read once per image, decimated to at most
   ``OVERVIEW_SIDE`` pixels), one range for all bands so that hues are kept
   (:func:`rsgpt4v.raster.read_rgb8`, made for display, stretches each band on its own).
3. Red, green and blue are the bands ``rsgpt4v.raster.rgb_bands`` picks (the file's colour
   interpretation, else bands 1-3, as in ``read_rgb8``); an image with fewer bands is grey
   from band 1 and named among ``GREY_NAMES`` only, a palette image through its colour map.
4. Each pixel is named by the nearest ``PALETTE`` colour in CIE Lab (D65), a space where
   distances follow perceived differences; the most frequent name is the colour if it covers at
   least ``DOMINANT_SHARE`` of the pixels and ``DOMINANT_MARGIN`` times the runner-up's, and
   there are at least ``MIN_PIXELS`` pixels. Else None: a mixed or tiny object has no one colour
   worth stating.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.windows import Window

from rsgpt4v.errors import InputError
from rsgpt4v.raster import check_complete, decode_errors, gdal_env, rgb_bands

PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (240, 240, 240),
    "light grey": (175, 175, 175),
    "grey": (125, 125, 125),
    "dark grey": (75, 75, 75),
    "black": (20, 20, 20),
    "red": (190, 40, 40),
    "orange": (230, 130, 40),
    "yellow": (225, 205, 60),
    "beige": (210, 190, 150),
    "brown": (120, 80, 45),
    "green": (70, 140, 60),
    "dark green": (35, 75, 35),
    "blue": (45, 85, 180),
    "light blue": (120, 180, 220),
}
GREY_NAMES = ("white", "light grey", "grey", "dark grey", "black")
SAMPLE_SIDE = 64
OVERVIEW_SIDE = 1024
DOMINANT_SHARE = 0.4
DOMINANT_MARGIN = 1.5
MIN_PIXELS = 12


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) 8-bit sRGB → (..., 3) CIE L*a*b* under D65 (the standard formulas)."""
    c = np.asarray(rgb, dtype=float) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
         [0.0193339, 0.1191920, 0.9503041]]
    )  # fmt: skip
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


_PALETTE_LAB = {name: srgb_to_lab(np.array(rgb)) for name, rgb in PALETTE.items()}


def dominant_colour(pixels: np.ndarray, names: Sequence[str] = tuple(PALETTE)) -> str | None:
    """The palette name (among ``names``) most (N, 3) 8-bit RGB pixels are nearest to, or None."""
    if len(pixels) < MIN_PIXELS:
        return None
    palette = np.stack([_PALETTE_LAB[n] for n in names])
    lab = srgb_to_lab(pixels)
    nearest = np.argmin(((lab[:, np.newaxis, :] - palette[np.newaxis]) ** 2).sum(-1), axis=1)
    counts = np.sort(np.bincount(nearest, minlength=len(names)))[::-1]
    if counts[0] < DOMINANT_SHARE * len(pixels) or counts[0] < DOMINANT_MARGIN * counts[1]:
        return None
    return names[int(np.argmax(np.bincount(nearest, minlength=len(names))))]


class ColourReader:
    """An open image that names the colour of one object after another (one open per record)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> ColourReader:
        self._open = ExitStack()  # the image, in a GDAL environment unless one is active
        if not rasterio.env.hasenv():
            self._open.enter_context(gdal_env())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._source = self._open.enter_context(rasterio.open(self.path))
        except RasterioIOError as error:
            self._open.close()
            raise InputError(f"cannot read image: {error}", file=self.path) from None
        try:
            self._prepare()
        except BaseException:
            self._open.close()
            raise
        return self

    def _prepare(self) -> None:
        """Bands, palette and stretch of the open image; refuses a cut file before any read."""
        source = self._source
        check_complete(source, self.path)  # a cut PNG reads as black rows, not as an error
        self._indexes = rgb_bands(source)
        self._lookup = None
        if source.count < 3 and source.colorinterp[0] == ColorInterp.palette:
            self._lookup = np.zeros((256, 3), dtype=np.uint8)
            for index, colour in source.colormap(1).items():
                if 0 <= index < 256:
                    self._lookup[index] = colour[:3]
        self._names = (
            tuple(PALETTE) if source.count >= 3 or self._lookup is not None else GREY_NAMES
        )
        self._eight_bit = all(source.dtypes[i - 1] == "uint8" for i in self._indexes)
        self._range = None if self._eight_bit else self._display_range()

    def __exit__(self, *exc: object) -> None:
        self._open.close()

    def colour_of(
        self, bbox: Sequence[float], polygon: Sequence[Sequence[float]] | None
    ) -> str | None:
        """The dominant colour name of the object with this box and polygon, or None."""
        x, y, w, h = bbox
        x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
        x1 = min(self._source.width, math.ceil(x + w))
        y1 = min(self._source.height, math.ceil(y + h))
        if x1 <= x0 or y1 <= y0:
            return None
        scale = max(1.0, max(w, h) / SAMPLE_SIDE)
        out_w, out_h = max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale))
        with decode_errors(self.path):
            data = self._source.read(
                self._indexes,
                window=Window(x0, y0, x1 - x0, y1 - y0),
                out_shape=(len(self._indexes), out_h, out_w),
                resampling=Resampling.nearest,
                masked=True,
            )
        valid = ~np.ma.getmaskarray(data).any(axis=0)
        rgb = self._to_rgb8(data, valid)
        ring = [list(p) for p in polygon] if polygon is not None else _box_ring(bbox)
        inside = geometry_mask(
            [{"type": "Polygon", "coordinates": [[*ring, ring[0]]]}],
            out_shape=(out_h, out_w),
            transform=Affine((x1 - x0) / out_w, 0, x0, 0, (y1 - y0) / out_h, y0),
            invert=True,
        )
        return dominant_colour(rgb[inside & valid], self._names)

    def _to_rgb8(self, data: np.ma.MaskedArray, valid: np.ndarray) -> np.ndarray:
        """(bands, H, W) read → (H, W, 3) 8-bit RGB, by the module's band and stretch rules."""
        if self._lookup is not None:
            return self._lookup[np.ma.filled(data[0], 0).astype(np.uint8)]
        values = np.ma.filled(data, 0)
        if self._range is not None:
            low, high = self._range
            values = values.astype(float)
            stretched = (np.where(np.isfinite(values), values, low) - low) * (255.0 / (high - low))
            values = np.rint(np.clip(stretched, 0, 255))
        bands = list(values.astype(np.uint8))
        return np.stack(bands * 3 if len(bands) == 1 else bands, axis=-1)

    def _display_range(self) -> tuple[float, float]:
        """The 2-98 % range of the image's valid values, all bands together (min-max if flat)."""
        source = self._source
        scale = max(1.0, max(source.width, source.height) / OVERVIEW_SIDE)
        shape = (len(self._indexes), round(source.height / scale), round(source.width / scale))
        with decode_errors(self.path):
            data = source.read(self._indexes, out_shape=shape, masked=True)
        values = np.ma.compressed(data).astype(float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return 0.0, 1.0
        low, high = (float(v) for v in np.percentile(values, (2, 98)))
        if high <= low:
            low, high = float(values.min()), float(values.max())
        return low, max(high, low + 1e-9)


def _box_ring(bbox: Sequence[float]) -> list[list[float]]:
    x, y, w, h = bbox
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
