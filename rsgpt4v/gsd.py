"""Ground sample distance: the metres on the ground that one pixel spans, where one number is true.

A projected CRS's units are not always ground metres. Web Mercator (EPSG:3857, the CRS of web
map tiles and of many basemap exports) is drawn at 1/cos(latitude) of true scale: at 45° a pixel
of "0.3 m" covers 0.21 m, and an area read in its units is twice the ground area. Degrees are no
metres at all. So the GSD is measured: the geodesic length on the WGS 84 ellipsoid of a step
along the pixel rows and along the columns at the scene centre.

- A projected CRS within ``NOMINAL_SCALE_TOLERANCE`` of true scale there (UTM, national grids)
  keeps its nominal metres per pixel, the resolution the data states.
- Otherwise (Web Mercator, a projection far from its true-scale lines, a geographic CRS) the
  measured value is the GSD, when the pixel is square on the ground within
  ``SQUARE_PIXEL_TOLERANCE``. Web Mercator's pixels are (it is conformal); square degrees are
  only near the equator (a degree of longitude shrinks with latitude), and elsewhere no single
  metres-per-pixel is true: None, and no metric fact is stated.
- Where the measurement fails (a point off the projection's domain), a projected CRS keeps its
  nominal value; a CRS that is neither projected nor geographic (a local engineering grid) or
  that pyproj cannot read has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

NOMINAL_SCALE_TOLERANCE = 0.01  # nominal / measured GSD within 1 %: the nominal one is kept
SQUARE_PIXEL_TOLERANCE = 0.01  # ground width / height of a pixel within 1 %: one GSD is true
_STEP_PX = 10  # the measured step, in pixels, from the scene centre


def ground_sample_distance(
    crs: str, transform: Sequence[float], width: int, height: int
) -> float | None:
    """Metres per pixel at the centre of a ``width`` x ``height`` scene; None where untrue.

    ``crs`` is any text pyproj reads (WKT, ``EPSG:…``); ``transform`` is in GDAL order.
    """
    units = _crs_units(crs)
    if units is None:
        return None
    is_projected, metres_per_unit = units
    t = transform
    nominal = math.sqrt(abs(t[1] * t[5] - t[2] * t[4])) * metres_per_unit if is_projected else None
    measured = _measured_pixel(crs, t, width / 2.0, height / 2.0)
    if measured is None:
        return nominal
    along_row, along_column = measured
    if abs(along_row - along_column) > SQUARE_PIXEL_TOLERANCE * max(along_row, along_column):
        return None
    ground = math.sqrt(along_row * along_column)
    if nominal is not None and abs(nominal - ground) <= NOMINAL_SCALE_TOLERANCE * ground:
        return nominal
    return ground


@lru_cache(maxsize=64)
def _crs_units(crs: str) -> tuple[bool, float] | None:
    """(projected?, metres per linear unit); None for a CRS pyproj cannot read."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        parsed = CRS.from_user_input(crs)
    except CRSError:
        return None
    if parsed.is_projected:
        return True, parsed.axis_info[0].unit_conversion_factor
    return (False, 0.0) if parsed.is_geographic else None


@lru_cache(maxsize=64)
def lonlat_transformer(crs: str):  # -> pyproj.Transformer | None
    """CRS → WGS 84 (longitude, latitude); None for a CRS pyproj cannot read or that is neither
    projected nor geographic (a local engineering CRS has no latitude or longitude)."""
    from pyproj import Transformer
    from pyproj.exceptions import CRSError, ProjError

    if _crs_units(crs) is None:
        return None
    try:
        return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    except (CRSError, ProjError):
        return None


@lru_cache(maxsize=1)
def _wgs84():  # -> pyproj.Geod
    from pyproj import Geod

    return Geod(ellps="WGS84")


def _measured_pixel(crs: str, t: Sequence[float], x: float, y: float) -> tuple[float, float] | None:
    """Ground metres of one pixel along its row and along its column at pixel (x, y)."""
    to_lonlat = lonlat_transformer(crs)
    if to_lonlat is None:
        return None
    s = _STEP_PX
    columns, rows = [x, x + s, x], [y, y, y + s]
    eastings = [t[0] + c * t[1] + r * t[2] for c, r in zip(columns, rows, strict=True)]
    northings = [t[3] + c * t[4] + r * t[5] for c, r in zip(columns, rows, strict=True)]
    from pyproj.exceptions import ProjError

    try:
        lons, lats = to_lonlat.transform(eastings, northings, errcheck=True)
    except ProjError:  # a point the projection cannot invert (off its domain)
        return None
    values = [*lons, *lats]
    if not all(math.isfinite(v) for v in values) or any(abs(v) > 90 for v in lats):
        return None
    geod = _wgs84()
    _, _, along_row = geod.inv(lons[0], lats[0], lons[1], lats[1])
    _, _, along_column = geod.inv(lons[0], lats[0], lons[2], lats[2])
    if along_row <= 0 or along_column <= 0:
        return None
    return along_row / s, along_column / s
