"""OpenAI chat fine-tuning JSONL: one ``{"messages": [...]}`` per line, the image as a content part.

The user turn that holds the image has content parts ``[{"type": "image_url", "image_url":
{"url": …}}, {"type": "text", "text": …}]``; no ``<image>`` token is left in any text. The URL is
either a ``data:image/jpeg;base64,…`` of the image (``--image-root``; rendered to 8-bit RGB by
:func:`rsgpt4v.raster.read_rgb8`, longer side at most ``--max-side``) or ``--image-url-prefix``
joined with the image's dataset-relative path, for images you host yourself. Boxes are rendered
for the picture the model is shown, so pixel styles stay true after downscaling.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from rsgpt4v.errors import InputError
from rsgpt4v.exporters.common import (
    Exporter,
    ImageRef,
    conversation,
    write_json_lines,
)
from rsgpt4v.raster import describe_raster, read_rgb8
from rsgpt4v.schema import Instruction

JPEG_QUALITY = 90


def jpeg_data_url(path: Path, size: list[int], max_side: int | None) -> tuple[str, tuple[int, int]]:
    """The image as a JPEG data URL and the (width, height) it was encoded at.

    Raises ValueError, naming the file, when it cannot be read, is truncated or corrupt
    (:func:`read_rgb8` checks; a cut image would be sent as black rows), or is not the size the
    instruction's boxes were made for (its boxes would then point at the wrong pixels).
    """
    try:
        facts = describe_raster(path)
        rgb = read_rgb8(path, max_side)
    except InputError as error:
        raise ValueError(str(error)) from None
    if [facts.width, facts.height] != list(size):
        raise ValueError(
            f"image {path} is {facts.width}x{facts.height}, "
            f"the instruction says {size[0]}x{size[1]}"
        )
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return "data:image/jpeg;base64," + encoded, (rgb.shape[1], rgb.shape[0])


class OpenAIExporter(Exporter):
    NAME = "openai"
    _last: tuple[tuple[Path, tuple[int, ...]], str, tuple[int, int]] | None = None

    def check(self) -> None:
        if self.options.image_root is None and self.options.image_url_prefix is None:
            raise InputError(
                "--format openai sends the image with every conversation: give --image-root "
                "(images embedded as JPEG data URLs) or --image-url-prefix URL (images you host)"
            )
        if self.options.max_side is not None and self.options.max_side < 1:
            raise InputError(f"--max-side must be positive, got {self.options.max_side}")

    def item(self, instruction: Instruction, image: ImageRef) -> dict[str, object]:
        shown = None
        if self.options.image_url_prefix is not None:
            url = self.options.image_url_prefix.rstrip("/") + "/" + quote(image.dataset_path)
        else:
            url, shown = self._data_url(image.file, instruction.image_size)
        turns = conversation(instruction, self.options, shown_size=shown)
        messages: list[dict[str, object]] = []
        placed = False
        for turn in turns:
            content: object = turn.content
            if turn.role == "user" and not placed:
                text = [{"type": "text", "text": turn.content}] if turn.content else []
                content = [{"type": "image_url", "image_url": {"url": url}}, *text]
                placed = True
            messages.append({"role": turn.role, "content": content})
        return {"messages": messages}

    def _data_url(self, path: Path, size: list[int]) -> tuple[str, tuple[int, int]]:
        """Encode once per image: an image's instructions are consecutive in the file."""
        key = (path, tuple(size))
        if self._last is None or self._last[0] != key:
            self._last = (key, *jpeg_data_url(path, size, self.options.max_side))
        return self._last[1], self._last[2]

    def write(self, items: Iterator[dict[str, object]]) -> None:
        write_json_lines(items, self.output)
