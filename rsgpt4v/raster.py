"""Reading images with rasterio: header facts, and 8-bit RGB renderings of any band layout.

Only the header is read to describe an image, so describing a 20000-px DOTA v2.0 scene costs as
little as a thumbnail. Plain PNG/JPEG images have no georeferencing: their CRS and transform stay
None (never invented). :func:`read_rgb8` turns any raster (16-bit multispectral, one grey band,
a palette PNG) into the 8-bit RGB picture a vision model is shown, and refuses a file that is cut
short or corrupt (:func:`check_complete`) rather than show black or partial pixels.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio._err import CPLE_BaseError
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import MemoryFile
from rasterio.windows import Window

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

    Raises InputError naming the file when it cannot be opened, or when it is truncated or
    corrupt (:func:`check_complete`, or GDAL failing to decode a block).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path) as source:
                check_complete(source, path)
                width, height = _fit_size(source.width, source.height, max_side)
                palette = source.count < 3 and source.colorinterp[0] == ColorInterp.palette
                indexes = rgb_bands(source)
                shrink = (width, height) != (source.width, source.height)
                average = shrink and not palette
                with decode_errors(path):
                    data = source.read(
                        indexes,
                        out_shape=(len(indexes), height, width),
                        resampling=Resampling.average if average else Resampling.nearest,
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


TRUNCATED = "image is truncated or corrupt"


@contextmanager
def decode_errors(path: str | Path) -> Iterator[None]:
    """Turn GDAL's failure to decode pixels into InputError naming the file.

    rasterio says only "Read failed. See previous exception for details."; GDAL's own message
    (the block, the codec's complaint) is the exception's cause.
    """
    try:
        yield
    except (RasterioIOError, CPLE_BaseError) as error:
        detail = error.__cause__ if isinstance(error.__cause__, CPLE_BaseError) else error
        raise InputError(f"{TRUNCATED}: {detail}", file=path) from None


def check_complete(source: rasterio.io.DatasetReader, path: str | Path) -> None:
    """Raise InputError naming the file when a PNG or TIFF holds less data than its header says.

    GDAL alone does not notice every cut: GDAL 3.10 decodes a whole non-interlaced PNG in one go
    and leaves the rows past the cut as zeros without an error, and a decimated read of a
    tiled GeoTIFF is served from overviews written before the (missing) full-resolution tiles.
    Only the chunk headers and tile tables are read (no pixel is decoded), which costs well
    under 1 % of decoding a large scene. Other formats, and paths GDAL reads through a virtual
    file system, are left to GDAL's own read errors.
    """
    if source.driver not in ("PNG", "GTiff") or not os.path.isfile(path):
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:  # pread, not mmap: a file cut while it is mapped would kill the process (SIGBUS)
        size = os.fstat(descriptor).st_size
        problem = _missing_data(
            lambda at, length: os.pread(descriptor, length, at), size, source.driver
        )
    finally:
        os.close(descriptor)
    if problem:
        raise InputError(f"{TRUNCATED}: {problem}", file=path)


def check_image_bytes(data: bytes, path: str | Path) -> None:
    """Raise InputError naming ``path`` unless ``data`` (a whole image file) decodes in full.

    For bytes stored as they are (parquet ``--embed-images``): nothing else decodes them before a
    trainer does, which would then learn from the grey or black rows of a cut file. Decoded
    with GDAL in bands of rows, so a large scene is never held whole in memory.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile(data) as memory, memory.open() as source:
                view = memoryview(data)
                problem = _missing_data(
                    lambda at, length: view[at : at + length], len(data), source.driver
                )
                if problem:
                    raise InputError(f"{TRUNCATED}: {problem}", file=path)
                rows = max(1, 2**24 // max(1, source.width * source.count))  # about 16 MB a read
                with decode_errors(path):
                    for top in range(0, source.height, rows):
                        height = min(rows, source.height - top)
                        source.read(window=Window(0, top, source.width, height))
    except RasterioIOError as error:
        raise InputError(f"cannot read image: {error}", file=path) from None


# (offset, length) -> at most that many bytes of the file from the offset
ReadAt = Callable[[int, int], bytes]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# TIFF tags of the pixel data: (offsets, byte counts) of strips, then of tiles.
_TIFF_DATA_TAGS = ((273, 279), (324, 325))
_TIFF_INTEGERS = {3: "u2", 4: "u4", 16: "u8"}  # SHORT, LONG, LONG8: the types these tags use


def _missing_data(read_at: ReadAt, size: int, driver: str) -> str | None:
    """Why a PNG or TIFF file's bytes hold less than their structure promises; None if whole."""
    if size == 0:
        return "the file is empty"
    if driver == "PNG":
        return _png_missing(read_at, size)
    if driver == "GTiff":
        return _tiff_missing(read_at, size)
    return None


def _png_missing(read_at: ReadAt, size: int) -> str | None:
    """Walk the chunk headers to IEND: a cut file ends inside a chunk or before IEND."""
    if bytes(read_at(0, 8)) != _PNG_SIGNATURE:
        return None  # not a plain PNG file: GDAL decides
    position = 8
    while position + 8 <= size:
        length, kind = struct.unpack(">I4s", read_at(position, 8))
        position += 12 + length  # length, type, data, CRC
        if position > size:
            name = kind.decode("latin-1")
            return f"its {name} chunk runs past the end of the file ({size} bytes)"
        if kind == b"IEND":
            return None
    return f"the file ends after {size} bytes, before the PNG's IEND chunk"


def _tiff_missing(read_at: ReadAt, size: int) -> str | None:
    """Every image directory, and every strip or tile it points to, must lie inside the file."""
    header = bytes(read_at(0, 16))
    order = {b"II": "<", b"MM": ">"}.get(header[:2])
    if order is None or len(header) < 16:
        return None
    (magic,) = struct.unpack_from(order + "H", header, 2)
    if magic not in (42, 43):  # classic TIFF, BigTIFF
        return None
    big = magic == 43
    word = order + ("Q" if big else "I")
    entry, head, inline = (20, 8, 8) if big else (12, 2, 4)
    (offset,) = struct.unpack_from(word, header, 8 if big else 4)
    seen: set[int] = set()
    while offset and offset not in seen:
        seen.add(offset)
        if offset + head > size:
            return f"an image directory lies past the end of the file ({size} bytes)"
        (entries,) = struct.unpack(order + ("Q" if big else "H"), read_at(offset, head))
        table_end = offset + head + entries * entry
        if table_end + inline > size:
            return f"an image directory runs past the end of the file ({size} bytes)"
        table = bytes(read_at(offset + head, entries * entry + inline))
        arrays: dict[int, np.ndarray] = {}
        for at in range(0, entries * entry, entry):
            tag, kind = struct.unpack_from(order + "HH", table, at)
            dtype = _TIFF_INTEGERS.get(kind)
            if dtype is None or not any(tag in pair for pair in _TIFF_DATA_TAGS):
                continue
            (count,) = struct.unpack_from(word, table, at + 4)
            length = count * int(dtype[1])
            if length <= inline:
                values = table[at + 4 + inline : at + 4 + inline + length]
            else:
                (start,) = struct.unpack_from(word, table, at + 4 + inline)
                if start + length > size:
                    return f"its strip or tile table runs past the end of the file ({size} bytes)"
                values = read_at(start, length)
            if len(values) != length:
                return f"its strip or tile table runs past the end of the file ({size} bytes)"
            arrays[tag] = np.frombuffer(values, dtype=order + dtype).astype(np.uint64)
        for offsets_tag, counts_tag in _TIFF_DATA_TAGS:
            offsets, counts = arrays.get(offsets_tag), arrays.get(counts_tag)
            if offsets is None or counts is None or len(offsets) != len(counts):
                continue
            used = counts > 0  # a sparse block (offset and count 0) holds no data to lose
            if used.any() and int((offsets[used] + counts[used]).max()) > size:
                return f"its pixel data runs past the end of the file ({size} bytes)"
        (offset,) = struct.unpack_from(word, table, entries * entry)
    return None


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
