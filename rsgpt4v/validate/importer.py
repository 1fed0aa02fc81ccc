"""Existing instruction datasets (LLaVA or ShareGPT JSON / JSON Lines) read for validation.

- LLaVA: ``[{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}]``.
- ShareGPT as LLaMA-Factory reads it: ``{"messages": [{"role", "content"}], "images": [path]}``,
  or ``{"conversations": [{"from", "value"}], "images": [...]}`` (``system``, ``human``, ``gpt``).

Boxes stay in the text in whatever style the dataset wrote them (``validate --boxes``); they
are read back and matched to the labels by :mod:`rsgpt4v.validate.text_boxes`. Each item is
tied to its record by id or by image path (exact, then by path suffix, then by file name), and
takes its image size from it. An item that cannot be read is a rejection, not a crash.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import load_json, loads
from rsgpt4v.schema import jsonl_lines

FORMATS = ("auto", "instructions", "llava", "sharegpt")
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class ImportedItem:
    """One conversation of an imported dataset, before it is tied to a record."""

    id: str
    image: str | None
    messages: list[dict[str, str]]
    line: int | None  # line of a JSON Lines file; None in a JSON array
    index: int  # position in the file, from 0
    problem: str | None = None  # why it cannot become an instruction, if it cannot


def detect_format(path: Path) -> str:
    """``instructions`` (rsgpt4v JSONL), ``llava`` or ``sharegpt``, from the first item."""
    first = next(_raw_items(path), None)
    if first is None:
        return "instructions"
    item = first[2]
    if isinstance(item, dict) and "record_id" in item and "messages" in item:
        return "instructions"
    if isinstance(item, dict) and ("images" in item or "messages" in item):
        return "sharegpt"
    if isinstance(item, dict) and "conversations" in item:
        return "llava"
    raise InputError(
        "not an instruction file: expected rsgpt4v instructions (JSONL), LLaVA "
        "('conversations') or ShareGPT ('messages'/'images') items",
        file=path,
        line=first[0],
        entry=f"item {first[1]}",
    )


class _UnreadableLine(NamedTuple):
    """A JSON Lines line that is not JSON: rejected with its line number like any bad item."""

    problem: str


def read_conversations(path: Path, fmt: str) -> Iterator[ImportedItem]:
    """The items of a LLaVA or ShareGPT file, each with its messages in rsgpt4v roles."""
    for line, index, item in _raw_items(path):
        yield _item(item, line, index, fmt, path)


def _item(item: Any, line: int | None, index: int, fmt: str, path: Path) -> ImportedItem:
    fallback = f"{path.stem}-{index}"
    if isinstance(item, _UnreadableLine):
        return ImportedItem(fallback, None, [], line, index, item.problem)
    if not isinstance(item, dict):
        return ImportedItem(fallback, None, [], line, index, "item is not a JSON object")
    item_id = str(item.get("id", fallback))
    turns = item.get("messages") if fmt == "sharegpt" and "messages" in item else None
    turns = turns if turns is not None else item.get("conversations")
    image = item.get("image")
    if image is None and isinstance(item.get("images"), list) and item["images"]:
        image = item["images"][0]
    if not isinstance(turns, list) or not turns:
        problem = "no conversation (messages/conversations)"
        return ImportedItem(item_id, image, [], line, index, problem)
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            return ImportedItem(item_id, image, [], line, index, f"turn is not an object: {turn!r}")
        role = _ROLES.get(str(turn.get("role", turn.get("from", ""))).lower())
        content = turn.get("content", turn.get("value"))
        if role is None or not isinstance(content, str):
            return ImportedItem(item_id, image, [], line, index, f"unreadable turn {turn!r}")
        messages.append({"role": role, "content": content})
    if not isinstance(image, str) or not image:
        return ImportedItem(item_id, None, messages, line, index, "no image path")
    return ImportedItem(item_id, image, messages, line, index)


def _raw_items(path: Path) -> Iterator[tuple[int | None, int, Any]]:
    """(line, index, parsed item) of a JSON Lines file, or (None, index, item) of a JSON array."""
    if not path.is_file():
        raise InputError("file not found", file=path)
    with path.open("rb") as handle:  # bytes: the sniff needs no decoding (a BOM is allowed)
        head = handle.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"["):
        data = load_json(path, what="instruction file")
        for index, item in enumerate(data if isinstance(data, list) else [data]):
            yield None, index, item
        return
    for index, (number, text) in enumerate(jsonl_lines(path)):
        try:
            item = loads(text, file=path, line=number)
        except InputError as error:  # a rejection of its own; the rest goes on
            item = _UnreadableLine(error.reason)
        yield number, index, item


class ImageIndex:
    """Records found by image path: exact, then by path suffix, then by unique file name."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._exact = paths  # image path → record id
        self._names: dict[str, str | None] = {}
        for image, record_id in paths.items():
            name = PurePosixPath(image).name
            self._names[name] = None if name in self._names else record_id

    def find(self, image: str) -> str | None:
        image = image.replace("\\", "/")
        if image in self._exact:
            return self._exact[image]
        parts = PurePosixPath(image).parts
        for start in range(1, len(parts)):
            suffix = "/".join(parts[start:])
            if suffix in self._exact:
                return self._exact[suffix]
        return self._names.get(PurePosixPath(image).name)
