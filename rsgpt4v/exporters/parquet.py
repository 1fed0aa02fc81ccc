"""Parquet through the Hugging Face ``datasets`` library, with a dataset card next to it.

Columns: ``id``, ``image``, ``messages`` (``{role, content}``, boxes rendered, ``<image>`` once at
the start of the first user turn), ``task``, ``source_generator``, ``source_template``,
``record_id``. ``image`` is a path string, or with ``--embed-images`` a ``datasets.Image`` (the
bytes travel in the file, so the folder can be pushed to the Hub as is). Rows stream through
``Dataset.from_generator`` into Arrow files in a scratch folder next to the output, then into
Parquet; ``datasets.load_dataset("parquet", data_files=OUT)`` reads the result.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from rsgpt4v.atomic import staged_path
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.exporters.card import check_card_is_ours, write_card
from rsgpt4v.exporters.common import (
    WEB_IMAGES,
    Exporter,
    ExportSummary,
    ImageRef,
    conversation,
    with_image_token,
)
from rsgpt4v.raster import check_image_bytes, describe_raster, read_rgb8
from rsgpt4v.schema import Instruction


def embedded_image(path: Path, dataset_path: str, size: list[int]) -> dict[str, object]:
    """The ``{bytes, path}`` of a ``datasets.Image``: PNG and JPEG files as they are, anything
    else (GeoTIFFs, 16-bit data) rendered to 8-bit RGB PNG at full size, so boxes stay true.

    Bytes stored as they are are decoded once here first (:func:`check_image_bytes`): a cut file
    would otherwise reach the trainer, which sees its missing rows as black.
    Raises ValueError, naming the file, when it cannot be read, is truncated or corrupt, or is
    not the instruction's size.
    """
    try:
        facts = describe_raster(path)
        if [facts.width, facts.height] != list(size):
            raise ValueError(
                f"image {path} is {facts.width}x{facts.height}, "
                f"the instruction says {size[0]}x{size[1]}"
            )
        if path.suffix.lower() in WEB_IMAGES:
            data = path.read_bytes()
            check_image_bytes(data, path)  # the very bytes that are stored
        else:
            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(read_rgb8(path)).save(buffer, format="PNG")
            data = buffer.getvalue()
    except InputError as error:
        raise ValueError(str(error)) from None
    return {"bytes": data, "path": dataset_path}


class ParquetExporter(Exporter):
    NAME = "parquet"
    _last: tuple[tuple[Path, tuple[int, ...]], dict[str, object]] | None = None

    def check(self) -> None:
        if self.output.suffix != ".parquet":
            raise InputError("name the Parquet output *.parquet", file=self.output)
        if self.options.embed_images and self.options.image_root is None:
            raise InputError("--embed-images reads the images: give --image-root")
        check_card_is_ours(self.output.parent)

    def item(self, instruction: Instruction, image: ImageRef) -> dict[str, object]:
        turns = with_image_token(conversation(instruction, self.options))
        if self.options.embed_images:
            picture: object = self._embedded(image, instruction.image_size)
        else:
            picture = image.written
        return {
            "id": instruction.id,
            "image": picture,
            "messages": [{"role": t.role, "content": t.content} for t in turns],
            "task": instruction.task,
            "source_generator": instruction.source.generator,
            "source_template": instruction.source.template,
            "record_id": instruction.record_id,
        }

    def _embedded(self, image: ImageRef, size: list[int]) -> dict[str, object]:
        """Read and check once per image: an image's instructions are consecutive in the file."""
        key = (image.file, tuple(size))
        if self._last is None or self._last[0] != key:
            self._last = (key, embedded_image(image.file, image.dataset_path, size))
        return self._last[1]

    def write(self, items: Iterator[dict[str, object]]) -> None:
        import datasets
        from datasets.exceptions import DatasetGenerationError

        text = datasets.Value("string")
        features = datasets.Features(
            {
                "id": text,
                "image": datasets.Image() if self.options.embed_images else text,
                "messages": datasets.List({"role": text, "content": text}),
                "task": text,
                "source_generator": text,
                "source_template": text,
                "record_id": text,
            }
        )
        self.output.parent.mkdir(parents=True, exist_ok=True)
        first = next(items, None)

        def rows() -> Iterator[dict[str, object]]:
            yield first
            yield from items

        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # the stage shows its own progress
        try:
            # A fresh cache folder and fingerprint: never reuse rows cached by an earlier run.
            # A new staged file renamed at the end: nothing left at a fixed name is followed.
            with (
                tempfile.TemporaryDirectory(prefix=".rsgpt4v-", dir=self.output.parent) as cache,
                staged_path(self.output) as staged,
            ):
                if first is None:  # from_generator refuses an empty generator
                    dataset = datasets.Dataset.from_dict({k: [] for k in features}, features)
                else:
                    dataset = datasets.Dataset.from_generator(
                        rows, features=features, cache_dir=cache, fingerprint=uuid.uuid4().hex
                    )
                dataset.to_parquet(str(staged))
                del dataset
        except DatasetGenerationError as error:
            if isinstance(error.__cause__, RsgptError):
                raise error.__cause__ from None
            raise
        finally:
            if bars:
                datasets.enable_progress_bars()

    def finish(self, summary: ExportSummary) -> list[Path]:
        return [write_card(self.output.parent, summary, self.options, self.output.name)]
