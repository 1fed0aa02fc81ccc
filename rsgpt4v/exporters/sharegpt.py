"""LLaMA-Factory: ``{"messages": [{"role", "content"}], "images": [path]}`` + dataset_info.json.

LLaMA-Factory's multimodal ShareGPT layout in its OpenAI-style variant (its ``mllm_demo.json``):
``<image>`` tags in the text, as many as there are ``images`` (one here, at the start of the first
user turn), paths relative to the dataset folder (LLaMA-Factory's ``media_dir`` defaults to it).
A dataset is used by name, from ``dataset_info.json`` in that folder, so the export writes its
entry there, next to OUT, keeping every other entry of an existing file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rsgpt4v.errors import InputError
from rsgpt4v.exporters.common import (
    Exporter,
    ExportOptions,
    ExportSummary,
    ImageRef,
    atomic_text,
    conversation,
    with_image_token,
    write_json_array,
    write_json_lines,
)
from rsgpt4v.families import BoxConvention
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.schema import Instruction

DATASET_INFO = "dataset_info.json"
# The keys of a dataset description, from LLaMA-Factory's data/README.md ("columns": messages and
# images for a multimodal dataset; "tags" as in its "OpenAI Format" section) and the mllm_demo
# entry of its data/dataset_info.json (github.com/hiyouga/LLaMA-Factory, data/).
TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


def to_sharegpt(
    instruction: Instruction, boxes: BoxConvention | str, image: str
) -> dict[str, object]:
    """One LLaMA-Factory item; raises ValueError for a conversation it cannot train on."""
    options = ExportOptions(boxes=BoxConvention(boxes) if isinstance(boxes, str) else boxes)
    turns = with_image_token(conversation(instruction, options))
    return {
        "messages": [{"role": t.role, "content": t.content} for t in turns],
        "images": [image],
    }


def dataset_entry(file_name: str) -> dict[str, object]:
    """The ``dataset_info.json`` description of an exported file."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": dict(TAGS),
    }


def read_dataset_info(path: Path) -> dict[str, object]:
    """An existing ``dataset_info.json`` (empty when absent); refuses one that is not an object."""
    if not path.exists():
        return {}
    try:
        info = load_json(path, what="dataset_info.json")
    except InputError as error:  # located after the name, as before: "FILE: … at line N; fix …"
        at = f" at line {error.line}" if error.line is not None else ""
        raise InputError(
            f"{error.reason}{at}; fix or remove it", file=path, value=error.value
        ) from None
    if not isinstance(info, dict):
        raise InputError("expected a JSON object of dataset descriptions", file=path)
    return info


class ShareGPTExporter(Exporter):
    NAME = "sharegpt"

    @property
    def info_path(self) -> Path:
        return self.output.parent / DATASET_INFO

    def check(self) -> None:
        if self.output.suffix not in (".json", ".jsonl"):
            raise InputError(
                "LLaMA-Factory reads .json or .jsonl files; name the output accordingly",
                file=self.output,
            )
        if self.output.name == DATASET_INFO:
            raise InputError(f"the output cannot be {DATASET_INFO} itself", file=self.output)
        read_dataset_info(self.info_path)

    def item(self, instruction: Instruction, image: ImageRef) -> dict[str, object]:
        return to_sharegpt(instruction, self.options.boxes, image.written)

    def write(self, items: Iterator[dict[str, object]]) -> None:
        if self.output.suffix == ".jsonl":
            write_json_lines(items, self.output)
        else:
            write_json_array(items, self.output)

    def finish(self, summary: ExportSummary) -> list[Path]:
        info = read_dataset_info(self.info_path)
        info[self.output.stem] = dataset_entry(self.output.name)
        with atomic_text(self.info_path) as handle:
            handle.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        return [self.info_path]
