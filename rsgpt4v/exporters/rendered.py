"""8-bit RGB PNG copies of the images that trainers cannot open themselves (``--render-images``).

LLaVA and LLaMA-Factory open each image file with PIL: a 16-bit or multi-band GeoTIFF fails
there, or is read through the wrong bands, hours into a training run. The export writes each
such image once as an 8-bit RGB PNG at full size (so boxes stay true) through
:func:`rsgpt4v.raster.read_rgb8` (the file's red, green and blue bands, a display stretch for
data that is not 8-bit) and points the training file at the copy. PNG and JPEG files are used
as they are, as ``--embed-images`` does. A copy newer than its source is reused, so exporting
again, or in another format, renders nothing twice. For a family that resizes the image
(Qwen2.5-VL, whose boxes are pixels of its resized image) every image is copied at that size,
so no trainer can resize it differently from the boxes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from rsgpt4v.atomic import staged_path
from rsgpt4v.errors import InputError
from rsgpt4v.exporters.common import WEB_IMAGES, ImageRef
from rsgpt4v.raster import read_rgb8


class ImageRenderer:
    """Renders images under ``folder`` (mirroring their paths under the image root), once each."""

    def __init__(
        self,
        folder: Path,
        image_root: Path,
        out_dir: Path,
        *,
        resize: Callable[[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self.folder, self.out_dir = folder, out_dir.resolve()
        self.resize = resize  # (width, height) -> the size to write, for resizing families
        self._root = image_root.resolve()
        self.rendered = 0  # images written by this run
        self.reused = 0  # copies found up to date
        self._done: dict[Path, Path | str] = {}  # source → its copy, or why it failed

    def __call__(self, image: ImageRef, size: list[int]) -> ImageRef:
        """The reference to the copy of the image (the image itself for PNG and JPEG).

        Raises ValueError (a reject of the instruction) when the image cannot be read or is not
        the size the instruction says.
        """
        source = image.file
        if source is None or (self.resize is None and source.suffix.lower() in WEB_IMAGES):
            return image
        done = self._done.get(source)
        if done is None:
            try:
                done = self._copy(source, size)
            except ValueError as error:
                done = str(error)
            self._done[source] = done
        if isinstance(done, str):
            raise ValueError(done)
        written = Path(os.path.relpath(done, self.out_dir)).as_posix()
        return ImageRef(image.dataset_path, written, done)

    def _copy(self, source: Path, size: list[int]) -> Path:
        # the path inside the root (resolve_image refused any other), never one with ".."
        shown = tuple(size) if self.resize is None else self.resize(size[0], size[1])
        suffix = ".png" if self.resize is None else f".{shown[0]}x{shown[1]}.png"
        target = self.folder / (source.relative_to(self._root).as_posix() + suffix)
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            with Image.open(target) as copy:
                _check_size(copy.size, list(shown), source)
            self.reused += 1
            return target
        try:
            rgb = read_rgb8(source)
        except InputError as error:
            raise ValueError(str(error)) from None  # the reject names the file
        _check_size((rgb.shape[1], rgb.shape[0]), size, source)
        picture = Image.fromarray(rgb)
        if picture.size != shown:  # the processor's own resampling (bicubic)
            picture = picture.resize(shown, Image.Resampling.BICUBIC)
        with staged_path(target) as staged:  # a failed write leaves no half file behind
            picture.save(staged, format="PNG")
        self.rendered += 1
        return target


def _check_size(found: tuple[int, int], size: list[int], source: Path) -> None:
    if list(found) != list(size):
        raise ValueError(
            f"image {source} is {found[0]}x{found[1]}, the instruction says {size[0]}x{size[1]}"
        )
