"""The record and instruction contracts (DESIGN.md) with streaming JSON Lines I/O.

`convert` writes one :class:`Record` per image or tile; `instruct` writes :class:`Instruction`
lines; every later stage reads them back. Files are streamed line by line so no stage holds a
whole dataset in memory, and a malformed line is reported with its file and line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rsgpt4v.atomic import atomic_text
from rsgpt4v.errors import InputError

Point = Annotated[list[float], Field(min_length=2, max_length=2)]  # [x, y]
ModelT = TypeVar("ModelT", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class ImageInfo(_Model):
    """Where the pixels are and how they map to the ground."""

    path: str = Field(description="Image path relative to the dataset root, POSIX separators.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    bands: int = Field(default=3, gt=0)
    gsd: float | None = Field(default=None, gt=0, description="Metres per pixel, when known.")
    crs: str | None = Field(
        default=None, description="WKT or EPSG string of a georeferenced image."
    )
    transform: list[float] | None = Field(
        default=None, min_length=6, max_length=6, description="Affine, GDAL order."
    )
    parent: str | None = Field(default=None, description="Record id of the scene a tile came from.")
    window: list[int] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="[x, y, w, h] of a tile in its parent.",
    )

    @field_validator("path")
    @classmethod
    def _posix_relative(cls, value: str) -> str:
        if "\\" in value or value.startswith("/") or not value:
            raise ValueError(f"image path must be relative with POSIX separators, got {value!r}")
        return value


class Object(_Model):
    """One labelled object: a clipped COCO box plus the source geometry."""

    model_config = ConfigDict(allow_inf_nan=False)  # every coordinate is a finite number

    id: int = Field(ge=0)
    category: str = Field(min_length=1, description="The source's class string, case kept.")
    bbox: list[float] = Field(min_length=4, max_length=4, description="COCO [x, y, w, h], clipped.")
    polygon: list[Point] | None = Field(
        default=None, min_length=3, description="Source geometry, pixels: three [x, y] or more."
    )
    difficult: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("bbox")
    @classmethod
    def _positive_size(cls, value: list[float]) -> list[float]:
        if value[2] <= 0 or value[3] <= 0:
            raise ValueError(f"bbox must have a positive width and height, got {value}")
        return value


_set = object.__setattr__


def trusted(model: type[ModelT], **values: Any) -> ModelT:
    """A model from values the caller built itself and knows valid, without validation.

    Converters and rules make millions of objects and instructions from numbers they parsed,
    clipped or counted themselves; validating each again costs more than making it. This does
    what ``model_construct`` does when every field is given, at a fraction of its cost. Every
    field must be passed (a missing one is a programming error, raised at once).
    """
    fields, extra = _trusted_layout(model)
    if values.keys() != fields:
        missing, unknown = fields - values.keys(), values.keys() - fields
        raise TypeError(f"trusted {model.__name__} needs exactly its fields: {missing=} {unknown=}")
    instance = model.__new__(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", set(fields))
    _set(instance, "__pydantic_extra__", {} if extra else None)
    _set(instance, "__pydantic_private__", None)
    return instance


@cache
def _trusted_layout(model: type[BaseModel]) -> tuple[frozenset[str], bool]:
    """The field names of a model and whether it keeps extra fields (looked up once)."""
    return frozenset(model.model_fields), model.model_config.get("extra") == "allow"


_OBJECT_FIELDS = frozenset(Object.model_fields)


def trusted_object(
    id: int,
    category: str,
    bbox: list[float],
    polygon: list[Point] | None,
    difficult: bool,
    attributes: dict[str, Any],
) -> Object:
    """:func:`trusted` for the converters' hot path: an Object from checked values.

    The same four slots :func:`trusted` fills, written out for Object alone: the fields are
    named by the signature, so the generic key check and layout lookup are not needed.
    """
    instance = Object.__new__(Object)
    _set(
        instance,
        "__dict__",
        {
            "id": id,
            "category": category,
            "bbox": bbox,
            "polygon": polygon,
            "difficult": difficult,
            "attributes": attributes,
        },
    )
    _set(instance, "__pydantic_fields_set__", set(_OBJECT_FIELDS))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


class QA(_Model):
    question: str
    answer: str
    type: str | None = None


class Record(_Model):
    """One image or tile with everything the legacy dataset says about it."""

    id: str = Field(min_length=1)
    dataset: str
    split: str
    image: ImageInfo
    objects: list[Object] = Field(default_factory=list)
    captions: list[str] = Field(default_factory=list)
    qa: list[QA] = Field(default_factory=list)
    label: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """False for images of a split without object labels (e.g. DOTA test)."""
        return bool(self.meta.get("labelled", True))


class Message(_Model):
    role: Literal["system", "user", "assistant"]
    content: str


class Source(_Model):
    """Provenance of an instruction: which generator and which template version wrote it."""

    model_config = ConfigDict(extra="allow")
    generator: str
    template: str


REF = re.compile(r"<ref:(\d+)>")
"""An object reference in instruction text: ``<ref:N>``, N a key of the instruction's regions."""


class Region(_Model):
    bbox: list[float] = Field(min_length=4, max_length=4)
    polygon: list[Point] | None = None
    category: str | None = Field(
        default=None,
        description="The object's class: the phrase that model families which name the object "
        "of a box (Qwen's object_ref, Qwen2.5-VL's label) write in answers.",
    )


class Instruction(_Model):
    """A (question, answer) conversation about one image; boxes are data, text has <ref:N>."""

    id: str
    record_id: str
    image: str
    image_size: list[int] = Field(min_length=2, max_length=2, description="[width, height].")
    task: str
    source: Source
    messages: list[Message] = Field(min_length=2)
    regions: dict[str, Region] = Field(default_factory=dict)


def read_jsonl(path: str | Path, model: type[ModelT]) -> Iterator[ModelT]:
    """Yield one validated model per non-blank line; raise InputError naming file and line."""
    path = existing_file(path)
    for number, line in jsonl_lines(path):
        try:
            yield model.model_validate_json(line)
        except ValidationError as error:
            raise line_error(error, model, path, number, line) from None


def jsonl_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; a line that is not UTF-8 raises InputError.

    Lines are split on ``\\n`` in bytes and decoded one at a time, so the error names the line
    (a text-mode reader fails on a read-ahead block, with no line to report) and the numbers
    agree with readers that seek by byte offset (``count_lines``, the validate record table).
    """
    path = existing_file(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise not_utf8(error, path, number) from None
            yield number, text


def not_utf8(error: UnicodeDecodeError, path: str | Path, line: int) -> InputError:
    """The InputError of a JSON Lines line that is not UTF-8, with the offending bytes."""
    bad = error.object[error.start : error.end]
    return InputError(
        f"not UTF-8 text ({error.reason} at byte {error.start + 1} of the line); "
        "save the file as UTF-8",
        file=path,
        line=line,
        value=bad,
    )


def line_error(
    error: ValidationError, model: type[BaseModel], path: Path, number: int, line: str
) -> InputError:
    """The first problem of a line, as an InputError naming file, line and field."""
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return InputError(
            f"not valid JSON ({first['msg'].removeprefix('Invalid JSON: ')})",
            file=path,
            line=number,
            value=_clip(line),
        )
    where = ".".join(str(p) for p in first["loc"]) or "line"
    return InputError(
        f"not a valid {model.__name__}: {where}: {first['msg']}",
        file=path,
        line=number,
        value=first.get("input") if where != "line" else _clip(line),
    )


def count_lines(path: str | Path) -> int:
    """Number of non-blank lines; used to size progress bars without parsing."""
    with existing_file(path).open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path)
    return path


def json_line(item: BaseModel) -> str:
    """The JSON Lines line of a model, newline included: what every writer writes."""
    return item.model_dump_json(exclude_none=False) + "\n"


class JsonlWriter:
    """Write models one per line to a staged file, renamed into place on success.

    A run that fails halfway leaves no truncated output behind that a later stage could
    mistake for a complete file (:func:`rsgpt4v.atomic.atomic_text`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0

    def __enter__(self) -> JsonlWriter:
        self._staged = atomic_text(self.path)
        self._handle = self._staged.__enter__()
        return self

    def write(self, item: BaseModel) -> None:
        self._handle.write(json_line(item))
        self.count += 1

    def write_line(self, line: str) -> None:
        """Write one item the caller serialised itself (newline included)."""
        self._handle.write(line)
        self.count += 1

    def write_lines(self, lines: list[str]) -> None:
        """Write items the caller serialised itself, one JSON line each (newline included).

        One write per line: a line of ASCII text is encoded without a per-character pass, which
        a joined text would lose as soon as one of its lines is not ASCII.
        """
        write = self._handle.write
        for line in lines:
            write(line)
        self.count += len(lines)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._staged.__exit__(exc_type, exc, tb)


def write_jsonl(path: str | Path, items: Iterable[BaseModel]) -> int:
    """Stream items to path; return how many were written."""
    with JsonlWriter(path) as writer:
        for item in items:
            writer.write(item)
    return writer.count


def _clip(text: str, limit: int = 80) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"
