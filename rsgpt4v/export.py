"""The ``export`` stage: instructions → training files, boxes rendered in the target's style.

Instructions keep boxes as data (``<ref:N>`` + regions); only here do they become text, in the
convention of the model to be trained (``--boxes llava|qwen2vl|…``, see :mod:`rsgpt4v.boxfmt`).
The stage streams instructions, resolves images and collects rejects once for every format; the
formats themselves (``llava``, ``sharegpt``, ``openai``, ``parquet``) live in
:mod:`rsgpt4v.exporters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rsgpt4v.errors import BoxFormatError, InputError
from rsgpt4v.export_settings import ExportSettings
from rsgpt4v.exporters import EXPORTERS, FORMATS
from rsgpt4v.exporters.common import (
    ExportOptions,
    ExportSummary,
    ObliqueRegion,
    render_refs,
    resolve_image,
)
from rsgpt4v.exporters.llava import to_llava
from rsgpt4v.exporters.rendered import ImageRenderer
from rsgpt4v.families import BoxConvention
from rsgpt4v.paths import ImageRoot
from rsgpt4v.problems import LineNumbers, Problem, ProblemLog, write_rejects
from rsgpt4v.schema import Instruction, count_lines, read_jsonl

__all__ = [
    "FORMATS",
    "ExportSettings",
    "ExportSummary",
    "export_instructions",
    "render_refs",
    "to_llava",
    "write_export",
]


def export_instructions(
    instructions_path: str | Path,
    output: str | Path,
    *,
    progress: Callable[[Iterable[Instruction], int | None], Iterable[Instruction]] | None = None,
    **options: Any,
) -> ExportSummary:
    """Write instructions as a training file; ``options`` are :class:`ExportSettings` fields
    (``fmt="sharegpt"``, ``boxes="qwen25vl"``, ``image_root=...``)."""
    return write_export(instructions_path, output, ExportSettings(**options), progress)


def write_export(
    instructions_path: str | Path,
    output: str | Path,
    settings: ExportSettings,
    progress: Callable[[Iterable[Instruction], int | None], Iterable[Instruction]] | None = None,
) -> ExportSummary:
    """Write instructions as a training file in format ``settings.fmt``.

    With ``image_root`` (the folder the records' image paths are relative to), every image must
    exist inside it and is written relative to the output's folder, the layout LLaVA's
    ``image_folder`` and LLaMA-Factory's ``media_dir`` expect; without it the dataset-relative
    paths are written unchecked. ``boxes`` names the model family (:mod:`rsgpt4v.families`);
    ``square_pad``, ``box_decimals`` and ``max_pixels``/``min_pixels`` (qwen25vl: boxes in pixels
    of the image resized within that budget) change its defaults. ``embed_images`` (parquet)
    stores the image bytes in the file; ``image_url_prefix`` and ``max_side`` (openai) choose
    hosted URLs or JPEG data URLs whose longer side is at most ``max_side`` (0: full size).
    ``render_images`` (llava, sharegpt) is a folder for 8-bit RGB PNG copies of the images that
    are not PNG or JPEG (:mod:`rsgpt4v.exporters.rendered`), which the file then points to; for
    a family that resizes (qwen25vl) every image is copied at the size its boxes are written for.
    """
    try:
        convention = BoxConvention(
            settings.boxes,
            settings.square_pad,
            settings.box_decimals,
            settings.max_pixels,
            settings.min_pixels,
        )
    except BoxFormatError as error:
        raise InputError(str(error)) from None
    output, root, rendered = Path(output), settings.image_root, settings.render_images
    ImageRoot.of(root)  # a folder, or an error naming it
    options = ExportOptions(
        convention,
        root,
        settings.embed_images,
        settings.image_url_prefix,
        settings.data_url_side(),
        rendered,
    )
    resize = convention.shown_size if convention.spec.frame == "resize" else None
    renderer = (
        ImageRenderer(rendered, root, output.parent, resize=resize) if rendered and root else None
    )
    exporter = EXPORTERS[settings.fmt](options, output)
    exporter.check()
    log = ProblemLog(skip_bad=settings.skip_bad)
    summary = ExportSummary(output=output)
    instructions: Iterable[Instruction] = read_jsonl(instructions_path, Instruction)
    if progress is not None:
        instructions = progress(instructions, count_lines(instructions_path))

    def items(line_of: LineNumbers) -> Iterator[dict[str, object]]:
        for number, instruction in enumerate(instructions):
            try:
                image = resolve_image(instruction, root, output.parent)
                if renderer is not None:
                    image = renderer(image, instruction.image_size)
                item = exporter.item(instruction, image)
            except ObliqueRegion as why:
                left_out = Problem(
                    str(why), str(instructions_path), line_of(number), entry=instruction.id
                )
                summary.not_written.append(left_out)
                continue
            except ValueError as error:
                log.reject(
                    f"instruction {instruction.id}: {error}",
                    instructions_path,
                    line_of(number),
                    instruction.id,
                )
                continue
            summary.add(instruction)
            yield item

    with LineNumbers(instructions_path) as line_of:
        exporter.write(items(line_of))
    summary.rejects = log.problems
    summary.rejects_file = write_rejects(output, log.problems)
    summary.not_written_file = write_rejects(output, summary.not_written, "not-written")
    summary.side_files = exporter.finish(summary)
    if renderer is not None:
        summary.images_rendered, summary.images_reused = renderer.rendered, renderer.reused
    return summary
