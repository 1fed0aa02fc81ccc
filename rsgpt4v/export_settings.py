"""The settings of the ``export`` stage (light: the CLI builds its options from them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from rsgpt4v.errors import InputError
from rsgpt4v.settings import StageSettings, option

#: Formats whose trainers open the image files with PIL (llava, sharegpt): --render-images.
RENDERED_FORMATS = ("llava", "sharegpt")
BOXES_HELP = (
    "Model family whose box convention to write (docs/families.md): llava (0-1 of the padded "
    "square, 2 decimals), qwen2vl (0-1000 grid, object_ref phrases), qwen25vl (pixels of the "
    "smart_resize'd image, JSON with labels), geochat, minigptv2, internvl, pixel."
)
PAD_HELP = (
    "Boxes relative to the image padded to a centred square (LLaVA-1.5's image_aspect_ratio "
    "pad). Default: the family's own (on for llava, off for the others)."
)
DECIMALS_HELP = "Decimals of normalised boxes (default: the family's; llava 2)."
MAX_PIXELS_HELP = (
    "qwen25vl: the processor's max_pixels; boxes are pixels of the image resized within it "
    "(default 12845056, Qwen2.5-VL's processor; LLaMA-Factory's image_max_pixels is 589824)."
)
MIN_PIXELS_HELP = "qwen25vl: the processor's min_pixels (default 3136)."


class ExportSettings(StageSettings):
    """What training file to write, and how its boxes and images are written."""

    fmt: str = option(
        "llava",
        "--format",
        help="Training format: llava (LLaVA conversations JSON), sharegpt (LLaMA-Factory "
        "messages + images, .json or .jsonl, and its dataset_info.json entry), openai (chat "
        "fine-tuning JSONL, image as a content part), parquet (Hugging Face datasets Parquet "
        "with a README.md dataset card).",
    )
    boxes: str = option("llava", "--boxes", help=BOXES_HELP)
    image_root: Path | None = option(
        None,
        "--image-root",
        help="Folder the image paths are relative to (the convert ROOT); "
        "images are checked and written relative to the output's folder.",
    )
    square_pad: bool | None = option(None, "--square-pad/--no-square-pad", help=PAD_HELP)
    box_decimals: int | None = option(None, "--box-decimals", help=DECIMALS_HELP, ge=0)
    max_pixels: int | None = option(None, "--max-pixels", help=MAX_PIXELS_HELP, ge=1)
    min_pixels: int | None = option(None, "--min-pixels", help=MIN_PIXELS_HELP, ge=1)
    skip_bad: bool = option(
        False, "--skip-bad", help="Skip bad instructions and list them in a rejects file."
    )
    embed_images: bool = option(
        False,
        "--embed-images",
        help="parquet: store the images in the file (PNG/JPEG as they are, other rasters "
        "rendered to 8-bit RGB PNG); needs --image-root.",
    )
    image_url_prefix: str | None = option(
        None,
        "--image-url-prefix",
        help="openai: image URL = this prefix + the dataset-relative image path (images you "
        "host) instead of JPEG data URLs read from --image-root.",
    )
    max_side: int | None = option(
        1024,
        "--max-side",
        help="openai data URLs: longer image side in pixels at most (0: full size); "
        "boxes are rendered for the scaled image.",
        ge=0,
    )
    render_images: Path | None = option(
        None,
        "--render-images",
        help="llava, sharegpt: write 8-bit RGB PNG copies of the images that are not PNG or "
        "JPEG (16-bit, multi-band GeoTIFFs, which the trainers' PIL cannot read) into this "
        "folder, at full size, and point the file to them; needs --image-root. With --boxes "
        "qwen25vl every image is copied at the size its boxes are written for.",
    )

    @model_validator(mode="after")
    def _options_of_the_format(self) -> ExportSettings:
        """Options of one format given for another are refused, not ignored."""
        from rsgpt4v.exporters import EXPORTERS, FORMATS

        fmt = self.fmt
        if fmt not in EXPORTERS:
            raise InputError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
        if self.embed_images and fmt != "parquet":
            raise InputError("--embed-images applies to --format parquet")
        if self.image_url_prefix is not None and fmt != "openai":
            raise InputError("--image-url-prefix applies to --format openai")
        if self.render_images is not None and fmt not in RENDERED_FORMATS:
            raise InputError(
                f"--render-images applies to --format {' and '.join(RENDERED_FORMATS)} (openai "
                "and parquet --embed-images render the images into the file)"
            )
        if self.render_images is not None and self.image_root is None:
            raise InputError("--render-images reads the images: give --image-root")
        return self

    def data_url_side(self) -> int | None:
        """The longer side of openai data URLs (None: full size; ``--max-side 0``)."""
        return self.max_side or None
