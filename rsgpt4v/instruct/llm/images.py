"""The image a pass shows the model: an 8-bit RGB JPEG of any raster, as a base64 data URL.

Any band layout (16-bit multispectral, grey, palette) goes through :func:`rsgpt4v.raster.
read_rgb8`, decimated on read so a large scene is never loaded whole. ``detail`` follows the
OpenAI vision API: ``low`` images are fixed-cost, so they are sent at 512 px; ``high`` images at
``max_side`` (default 2048, the API's own first resize). The digest of the JPEG bytes (not of the
base64 text) is what the cache key holds.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from rsgpt4v.errors import InputError
from rsgpt4v.raster import read_rgb8

DETAILS = ("low", "high")
LOW_DETAIL_SIDE = 512
HIGH_DETAIL_SIDE = 2048
JPEG_QUALITY = 85


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


def render_image(
    path: str | Path, detail: str = "low", max_side: int | None = None
) -> RenderedImage:
    """Read, downscale and JPEG-encode an image; InputError naming the file when unreadable."""
    rgb = read_rgb8(path, max_side=render_side(detail, max_side))
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
