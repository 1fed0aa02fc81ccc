"""The dataset card (``README.md``) written next to a Parquet export.

A Hugging Face dataset card: a YAML header (licence, task categories, size, the Parquet file as
the default config) and a body that says where every row came from — source datasets and their
licences, counts per task, generators and prompt template versions — so a trainer can tell what
the data is and whether they may use it without reading the pipeline.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from rsgpt4v import __version__
from rsgpt4v.errors import InputError
from rsgpt4v.exporters.common import ExportOptions, ExportSummary, atomic_text

CARD = "README.md"
MARKER = "<!-- rsgpt4v dataset card: every Parquet export into this folder rewrites it -->"
UNKNOWN_LICENCE = "see the source dataset"

#: Dataset families whose terms are clear: (terms, Hugging Face licence id). Every other source is
#: listed as "see the source dataset" rather than guessed. A family covers its versions
#: (``dota`` covers ``dota-v1.0``, ``dota-v2.0``, …).
KNOWN_LICENCES: dict[str, tuple[str, str]] = {
    "dota": (
        "academic use only, commercial use prohibited (captain-whu.github.io/DOTA); "
        "Google Earth imagery terms also apply",
        "other",
    ),
    "xview": ("CC BY-NC-SA 4.0 (xviewdataset.org)", "cc-by-nc-sa-4.0"),
}


def licence_of(dataset: str) -> tuple[str, str]:
    """(terms, Hugging Face licence id) of a dataset name such as ``dota-v1.0``."""
    for family, licence in KNOWN_LICENCES.items():
        if dataset == family or dataset.startswith(family + "-"):
            return licence
    return UNKNOWN_LICENCE, "other"


def check_card_is_ours(folder: Path) -> None:
    """Refuse to overwrite a README.md that an export did not write."""
    path = folder / CARD
    if path.exists() and MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        raise InputError(
            "a README.md that rsgpt4v did not write is in the output folder; the Parquet export "
            "writes its dataset card there: choose another folder or move the file",
            file=path,
        )


def size_category(n: int) -> str:
    """The Hugging Face ``size_categories`` bucket of n rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M" if n < 10_000_000 else "n>10M"


def render_card(summary: ExportSummary, options: ExportOptions, data_file: str) -> str:
    """The card's text, from the export's counts."""
    licences = {d: licence_of(d) for d in summary.per_dataset}
    ids = {hf_id for _, hf_id in licences.values()}
    header = {
        "license": ids.pop() if len(ids) == 1 else "other",
        "language": ["en"],
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "tags": ["remote-sensing", "instruction-tuning", "rsgpt4v"],
        "size_categories": [size_category(summary.written)],
        "configs": [{"config_name": "default", "data_files": data_file}],
    }
    image = (
        "the image, embedded (`bytes`, and `path` relative to the source dataset's root)"
        if options.embed_images
        else "image path, relative to this folder when exported with `--image-root`, "
        "else to the source dataset's root"
    )
    boxes = options.boxes
    pad = ", normalised to the image padded to a centred square" if boxes.padded else ""
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        MARKER,
        "",
        f"# {Path(data_file).stem}",
        "",
        f"Remote-sensing instruction data for multimodal LLMs: {summary.written} conversations "
        f"in `{data_file}`, written by rsgpt4v {__version__} "
        f"(`rsgpt4v export --format parquet {boxes.flags()}`).",
        "",
        "## Columns",
        "",
        "| column | content |",
        "|---|---|",
        "| `id` | instruction id |",
        f"| `image` | {image} |",
        "| `messages` | list of `{role, content}`; `<image>` once, at the start of the first "
        "user turn |",
        "| `task` | task of the instruction |",
        "| `source_generator`, `source_template` | what wrote it, and the prompt template "
        "version |",
        "| `record_id` | the record (image or tile) it is about: `DATASET/SPLIT/NAME` |",
        "",
        f"Boxes are written in the `{boxes.family}` style{pad}; "
        f"`rsgpt4v.families.{boxes.code()}.view(width, height).parse(text)` reads them back.",
        "",
        "## Source datasets and licences",
        "",
        "Rows derived from a dataset carry its terms. Check each source's terms before using or "
        "redistributing this data.",
        "",
        "| dataset | conversations | licence |",
        "|---|---|---|",
        *(f"| {d} | {n} | {licences[d][0]} |" for d, n in _sorted(summary.per_dataset)),
        "",
        "## Tasks",
        "",
        "| task | conversations |",
        "|---|---|",
        *(f"| {task} | {n} |" for task, n in _sorted(summary.per_task)),
        "",
        "## Generators and prompt templates",
        "",
        "| generator | template | conversations |",
        "|---|---|---|",
        *(f"| {g} | {t} | {n} |" for (g, t), n in _sorted(summary.per_source)),
    ]
    if summary.rejects:
        lines += [
            "",
            f"{len(summary.rejects)} instructions were left out; `{summary.rejects_file.name}` "
            "says which and why.",
        ]
    return "\n".join(lines) + "\n"


def write_card(
    folder: Path, summary: ExportSummary, options: ExportOptions, data_file: str
) -> Path:
    path = folder / CARD
    with atomic_text(path) as handle:
        handle.write(render_card(summary, options, data_file))
    return path


def _sorted(counts: Counter) -> list:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
