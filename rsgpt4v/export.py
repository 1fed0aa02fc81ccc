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

from rsgpt4v.boxfmt import STYLES
from rsgpt4v.errors import InputError
from rsgpt4v.exporters import EXPORTERS, FORMATS
from rsgpt4v.exporters.common import (
    PIXEL_STYLES,
    ExportOptions,
    ExportSummary,
    render_refs,
    resolve_image,
)
from rsgpt4v.exporters.llava import to_llava
from rsgpt4v.exporters.rendered import ImageRenderer
from rsgpt4v.problems import ProblemLog, write_rejects
from rsgpt4v.schema import Instruction, count_lines, read_jsonl

RENDERED_FORMATS = ("llava", "sharegpt")  # formats whose trainers open the image files with PIL
__all__ = ["FORMATS", "ExportSummary", "export_instructions", "render_refs", "to_llava"]


def export_instructions(
    instructions_path: str | Path,
    output: str | Path,
    *,
    fmt: str = "llava",
    boxes: str = "llava",
    image_root: str | Path | None = None,
    square_pad: bool = False,
    skip_bad: bool = False,
    embed_images: bool = False,
    image_url_prefix: str | None = None,
    max_side: int | None = 1024,
    render_images: str | Path | None = None,
    progress: Callable[[Iterable[Instruction], int | None], Iterable[Instruction]] | None = None,
) -> ExportSummary:
    """Write instructions as a training file in format ``fmt``.

    With ``image_root`` (the folder the records' image paths are relative to), every image must
    exist inside it and is written relative to the output's folder, the layout LLaVA's
    ``image_folder`` and LLaMA-Factory's ``media_dir`` expect; without it the dataset-relative
    paths are written unchecked. ``square_pad`` normalises boxes to the image padded to a centred
    square (LLaVA-1.5 with ``image_aspect_ratio: pad``). ``embed_images`` (parquet) stores the
    image bytes in the file; ``image_url_prefix`` and ``max_side`` (openai) choose hosted URLs
    or JPEG data URLs whose longer side is at most ``max_side`` (None: full size).
    ``render_images`` (llava, sharegpt) is a folder for 8-bit RGB PNG copies of the images that
    are not PNG or JPEG (:mod:`rsgpt4v.exporters.rendered`), which the file then points to.
    """
    if fmt not in EXPORTERS:
        raise InputError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if boxes not in STYLES:
        raise InputError(f"unknown box style {boxes!r}; known: {', '.join(STYLES)}")
    if square_pad and boxes in PIXEL_STYLES:
        raise InputError(f"--square-pad applies to normalised box styles, not {boxes!r}")
    if embed_images and fmt != "parquet":
        raise InputError("--embed-images applies to --format parquet")
    if image_url_prefix is not None and fmt != "openai":
        raise InputError("--image-url-prefix applies to --format openai")
    if render_images is not None and fmt not in RENDERED_FORMATS:
        raise InputError(
            f"--render-images applies to --format {' and '.join(RENDERED_FORMATS)} (openai and "
            "parquet --embed-images render the images into the file)"
        )
    if render_images is not None and image_root is None:
        raise InputError("--render-images reads the images: give --image-root")
    output = Path(output)
    root = Path(image_root) if image_root is not None else None
    if root is not None and not root.is_dir():
        raise InputError("image root is not a folder", file=root)
    rendered = Path(render_images) if render_images is not None else None
    options = ExportOptions(
        boxes, square_pad, root, embed_images, image_url_prefix, max_side, rendered
    )
    renderer = ImageRenderer(rendered, root, output.parent) if rendered and root else None
    exporter = EXPORTERS[fmt](options, output)
    exporter.check()
    log = ProblemLog(skip_bad=skip_bad)
    summary = ExportSummary(output=output)
    instructions: Iterable[Instruction] = read_jsonl(instructions_path, Instruction)
    if progress is not None:
        instructions = progress(instructions, count_lines(instructions_path))

    def items() -> Iterator[dict[str, object]]:
        for instruction in instructions:
            try:
                image = resolve_image(instruction, root, output.parent)
                if renderer is not None:
                    image = renderer(image, instruction.image_size)
                item = exporter.item(instruction, image)
            except ValueError as error:
                log.reject(f"instruction {instruction.id}: {error}", instructions_path)
                continue
            summary.add(instruction)
            yield item

    exporter.write(items())
    summary.rejects = log.problems
    summary.rejects_file = write_rejects(output, log.problems)
    summary.side_files = exporter.finish(summary)
    if renderer is not None:
        summary.images_rendered, summary.images_reused = renderer.rendered, renderer.reused
    return summary
