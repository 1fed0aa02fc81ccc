"""The image a pass shows the model: an 8-bit RGB JPEG of any raster, as a base64 data URL.

Any band layout (16-bit multispectral, grey, palette) goes through :func:`rsgpt4v.raster.
read_rgb8`, decimated on read so a large scene is never loaded whole. ``detail`` follows the
OpenAI vision API: ``low`` images are fixed-cost, so they are sent at 512 px; ``high`` images at
``max_side`` (default 2048, the API's own first resize). The digest of the JPEG bytes (not of the
base64 text) is what the cache key holds.

Small objects are shown in crops (:func:`render_crops`): windows of the scene at full resolution,
at most ``CROP_SIDE`` px, sent at ``detail low`` (a 512-px image loses nothing at low detail and
costs its fixed price). Crops are cut from one reading of the scene at most
``CROP_READ_MAX_SIDE`` px on its longer side, so a scene larger than that (tile it first) has
its crops at that reading's resolution.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rsgpt4v.errors import InputError
from rsgpt4v.instruct.llm.settings import DETAILS
from rsgpt4v.raster import read_rgb8

LOW_DETAIL_SIDE = 512
HIGH_DETAIL_SIDE = 2048
JPEG_QUALITY = 85
CROP_SIDE = 512  # px a crop is sent at, at most (the low-detail size)
CROP_READ_MAX_SIDE = 4096  # the scene is read at most this large to cut crops from
# What the API does to an image before the model sees it (OpenAI vision): low fits 512 x 512;
# high fits 2048 x 2048, then shrinks the short side to 768.
API_LOW_SIDE = 512
API_HIGH_SIDE = 2048
API_HIGH_SHORT_SIDE = 768


@dataclass(frozen=True)
class RenderedImage:
    data_url: str
    digest: str  # sha256 of the JPEG bytes
    width: int
    height: int
    detail: str

    def content_part(self) -> dict:
        """The chat ``image_url`` content part."""
        return {"type": "image_url", "image_url": {"url": self.data_url, "detail": self.detail}}


def render_side(detail: str, max_side: int | None = None) -> int:
    """The longer side an image is sent at for a detail level."""
    if detail not in DETAILS:
        raise InputError(f"unknown image detail {detail!r}; expected low or high")
    default = LOW_DETAIL_SIDE if detail == "low" else HIGH_DETAIL_SIDE
    return min(default, max_side) if max_side else default


def seen_scale(width: int, height: int, detail: str, max_side: int | None = None) -> float:
    """Source pixels → pixels the model sees of a ``width`` x ``height`` image sent at
    ``detail``: the size it is sent at (:func:`render_side`), then the API's own resize."""
    scale = min(1.0, render_side(detail, max_side) / max(width, height))
    w, h = width * scale, height * scale
    if detail == "low":
        return scale * min(1.0, API_LOW_SIDE / max(w, h))
    fit = min(1.0, API_HIGH_SIDE / max(w, h))
    return scale * fit * min(1.0, API_HIGH_SHORT_SIDE / (min(w, h) * fit))


def render_image(
    path: str | Path, detail: str = "low", max_side: int | None = None
) -> RenderedImage:
    """Read, downscale and JPEG-encode an image; InputError naming the file when unreadable."""
    return _encode(read_rgb8(path, max_side=render_side(detail, max_side)), detail)


def render_crops(
    path: str | Path, windows: Sequence[tuple[int, int, int, int]], width: int, height: int
) -> list[RenderedImage]:
    """The ``[x, y, w, h]`` windows (source pixels of a ``width`` x ``height`` image) as JPEG
    crops at ``detail low``, cut from one reading of the image (at most ``CROP_READ_MAX_SIDE``
    px)."""
    if not windows:
        return []
    rgb = read_rgb8(path, max_side=CROP_READ_MAX_SIDE)
    sx, sy = rgb.shape[1] / width, rgb.shape[0] / height
    crops = []
    for x, y, w, h in windows:
        x0, y0 = max(round(x * sx), 0), max(round(y * sy), 0)
        x1 = min(max(round((x + w) * sx), x0 + 1), rgb.shape[1])
        y1 = min(max(round((y + h) * sy), y0 + 1), rgb.shape[0])
        part = rgb[y0:y1, x0:x1]
        if max(part.shape[:2]) > CROP_SIDE:  # rounding: never above the low-detail size
            image = Image.fromarray(part)
            image.thumbnail((CROP_SIDE, CROP_SIDE), Image.Resampling.BOX)
            part = np.asarray(image)
        crops.append(_encode(np.ascontiguousarray(part), "low"))
    return crops


def _encode(rgb: np.ndarray, detail: str) -> RenderedImage:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    data = buffer.getvalue()
    encoded = base64.b64encode(data).decode("ascii")
    return RenderedImage(
        data_url=f"data:image/jpeg;base64,{encoded}",
        digest=hashlib.sha256(data).hexdigest(),
        width=rgb.shape[1],
        height=rgb.shape[0],
        detail=detail,
    )
