"""The static HTML report: summary tables, figures and a sample viewer, in one folder.

The folder is self-contained and opens from disk (``file://``) without a server: the summary is
rendered into ``index.html`` with Jinja2, the viewer's samples are a script (``data.js``, not a
``fetch`` of a JSON file, which browsers block on ``file://``), and every sampled image is copied
as a downscaled JPEG into ``images/`` (one that cannot be read, as a note saying why). The
viewer draws each sample's regions, the boxes parsed from its text and the other labelled boxes
over its image, beside the conversation.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import asdict
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rsgpt4v.errors import InputError
from rsgpt4v.paths import under_root
from rsgpt4v.report.plots import write_plots
from rsgpt4v.report.stats import ReportStats


class RunSummary(Protocol):
    """What the report reads of a stage's summary (``validate``'s ValidationSummary, a
    dataclass): its fields for ``summary.json`` and the IoU threshold of the viewer. The report
    sits below the stages that write it, so it names no stage's type."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    iou: float


IMAGE_MAX_SIDE = 768
JPEG_QUALITY = 88
STATIC_FILES = ("viewer.js", "report.css")


def write_report(
    folder: str | Path,
    stats: ReportStats,
    summary: RunSummary,
    image_root: Path | None,
) -> Path:
    """Write the report into ``folder``; return the path of its ``index.html``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = write_plots(stats, folder / "plots")
    samples = stats.samples()
    images = _copy_images(samples, image_root, folder / "images")
    for sample in samples:
        sample["src"] = images.get(sample["image"])
    overview = stats.summary()
    run = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in asdict(summary).items()
    }
    (folder / "summary.json").write_text(
        json.dumps({"run": run, **overview}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    payload = {"samples": samples, "iou": summary.iou, "summary": overview}
    text = json.dumps(payload, ensure_ascii=False).replace("</", "<\\/")
    (folder / "data.js").write_text(f"window.RSGPT4V_REPORT = {text};\n", encoding="utf-8")
    templates = files("rsgpt4v.report") / "templates"
    for name in STATIC_FILES:
        (folder / name).write_text((templates / name).read_text(encoding="utf-8"), "utf-8")
    environment = Environment(
        loader=PackageLoader("rsgpt4v.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = environment.get_template("index.html.j2").render(
        run=run, summary=overview, figures=figures, samples=len(samples)
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _copy_images(
    samples: list[dict[str, Any]], image_root: Path | None, folder: Path
) -> dict[str, str]:
    """Downscaled JPEG copies of the sampled images: {image path: path inside the report}.

    Without an image root there is nothing to copy: the viewer draws the boxes on a blank canvas
    of the image's size. An image that cannot be read (missing, cut, outside the root) gets a
    note in its place instead (:func:`_note_svg`), so a broken image is seen, not just absent.
    """
    if image_root is None:
        return {}
    from PIL import Image

    from rsgpt4v.raster import read_rgb8

    folder.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, list[int]] = {}
    for sample in samples:
        sizes.setdefault(sample["image"], sample["image_size"])
    copied: dict[str, str] = {}
    for image, size in sizes.items():
        stem = hashlib.sha1(image.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        try:
            pixels = read_rgb8(under_root(image_root, image), max_side=IMAGE_MAX_SIDE)
        except InputError as error:
            (folder / f"{stem}.svg").write_text(_note_svg(str(error), size), encoding="utf-8")
            copied[image] = f"images/{stem}.svg"
            continue
        Image.fromarray(pixels).save(folder / f"{stem}.jpg", format="JPEG", quality=JPEG_QUALITY)
        copied[image] = f"images/{stem}.jpg"
    return copied


def _note_svg(note: str, size: list[int]) -> str:
    """A picture of the image's size saying why the image is not shown (file and reason).

    The viewer shows it where the image would be and draws the boxes over it. The text is
    XML-escaped, and characters XML cannot hold (controls, undecodable bytes of a file name)
    are written as Python escapes, so a hostile file name neither breaks nor injects markup.
    """
    width, height = (max(1, int(side)) for side in size)
    printable = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in note)
    lines = ["image not shown:", *textwrap.wrap(printable, 60, break_on_hyphens=False)]
    font = min(width / 36, height / (1.4 * len(lines) + 1))
    texts = "".join(
        f'<text x="{font:.2f}" y="{font * 1.4 * (number + 1):.2f}">{escape(line)}</text>'
        for number, line in enumerate(lines)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(printable)}</title>'
        '<rect width="100%" height="100%" fill="#eceff3"/>'
        f'<g font-family="sans-serif" font-size="{font:.2f}" fill="#b3261e">{texts}</g></svg>\n'
    )
