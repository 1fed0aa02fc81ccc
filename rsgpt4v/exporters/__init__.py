"""Training formats of the ``export`` stage, one module each, and the registry that names them.

``common`` holds what every format shares (box rendering, turn checks, image paths, atomic
writers); a format module holds only the shape of its items and the files around them.
"""

from __future__ import annotations

from rsgpt4v.exporters.common import Exporter
from rsgpt4v.exporters.llava import LlavaExporter
from rsgpt4v.exporters.openai_chat import OpenAIExporter
from rsgpt4v.exporters.parquet import ParquetExporter
from rsgpt4v.exporters.sharegpt import ShareGPTExporter

EXPORTERS: dict[str, type[Exporter]] = {
    exporter.NAME: exporter
    for exporter in (LlavaExporter, ShareGPTExporter, OpenAIExporter, ParquetExporter)
}
FORMATS: tuple[str, ...] = tuple(EXPORTERS)

__all__ = ["EXPORTERS", "FORMATS", "Exporter"]
