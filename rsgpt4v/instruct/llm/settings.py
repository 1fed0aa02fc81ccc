"""What decides a run of the LLM passes, and the API key: read from the environment, never shown.

:class:`LlmSettings` is a stage settings model (:mod:`rsgpt4v.settings`): the fields a user sets
are ``instruct``'s options (flag, help and bounds in the field), checked when the settings are
made; a number out of bounds is the one-line error the CLI prints, naming the option.

The key is read from the variable that ``--api-key-env`` names and handed to the client only;
:class:`Redactor` scrubs it (and any 8+ character piece of it, as servers echo masked keys) from
every text rsgpt4v prints or writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from annotated_types import Ge, Gt
from pydantic import ValidationError, ValidationInfo, ValidatorFunctionWrapHandler, field_validator
from pydantic.fields import FieldInfo

from rsgpt4v.completeness import LabelCompleteness, completeness_table
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.settings import StageSettings, flags_of, option

NO_KEY = "unused"  # local servers (vLLM, Ollama) take any key; the SDK wants one
#: The passes, in the order a record goes through them (:data:`rsgpt4v.instruct.llm.passes.PASSES`).
PASS_NAMES = ("local", "global", "multi_turn")
#: Image detail levels of the chat API (:func:`rsgpt4v.instruct.llm.images.render_side`).
DETAILS = ("low", "high")
MAX_LISTED_OBJECTS = 40  # rows of the object table (the local reply grows ~90 tokens per row)
MAX_CROPS = 4  # extra crop images of the local pass (85 tokens each at detail low)
#: Fields with bounds: a value out of them is refused with the option's name.
_BOUNDED = (
    "concurrency",
    "budget_usd",
    "max_objects",
    "max_crops",
    "timeout_s",
    "max_retries",
    "poll_interval_s",
)


class LlmSettings(StageSettings):
    """Everything that decides how the LLM passes run (see ``rsgpt4v instruct --help``)."""

    model: str | None = option(
        None, "--model", help="llm: model name, e.g. gpt-4o-2024-08-06 or a vLLM/Ollama model."
    )  # None: no LLM run (the rules alone; ``check`` refuses it for one)
    base_url: str | None = option(
        None,
        "--base-url",
        help="llm: OpenAI-compatible API root, e.g. http://localhost:8000/v1 (default OpenAI).",
    )
    api_key_env: str = option(
        "OPENAI_API_KEY",
        "--api-key-env",
        help="llm: environment variable holding the API key (the key is never written).",
    )
    concurrency: int = option(
        8, "--concurrency", help="llm: requests in flight at most.", ge=1, strict=True
    )
    cache_dir: Path | None = option(
        None,
        "--cache",
        help="llm: folder of the reply cache (default .rsgpt4v-llm-cache beside the output); "
        "a rerun pays nothing for finished work.",
    )
    budget_usd: float | None = option(
        None,
        "--budget-usd",
        help="llm: stop cleanly before the runs writing this output spend more than this in all "
        "(USD).",
        ge=0.0,
        allow_inf_nan=False,
    )
    batch: bool = option(
        False, "--batch", help="llm: go through the OpenAI Batch API (half price, within 24 h)."
    )
    shard: tuple[int, int] | None = option(
        None,
        "--shard",
        help="Only shard I of N (I/N, 0-based), chosen by a hash of record ids.",
        cli_type=str,
    )
    detail: str = option("low", "--detail", help="llm: image detail, low or high.")
    max_objects: int = option(
        MAX_LISTED_OBJECTS,
        "--max-objects",
        help="llm: objects listed in a prompt at most, spread over the scene, larger and more "
        "distinct first (the class counts cover all).",
        ge=1,
        strict=True,
    )
    max_crops: int = option(
        MAX_CROPS,
        "--max-crops",
        help="llm: full-resolution crops the local pass may add for objects too small in the "
        "scene image (0: none; such objects get no appearance question).",
        ge=0,
        strict=True,
    )
    prices: Path | None = option(
        None, "--prices", help="llm: price table YAML (default: the bundled, dated one)."
    )
    timeout_s: float = option(
        120.0,
        "--timeout",
        help="llm: seconds per attempt before it is retried.",
        gt=0.0,
        allow_inf_nan=False,
    )
    max_retries: int = option(
        4,
        "--max-retries",
        help="llm: retries per request after the first attempt.",
        ge=0,
        strict=True,
    )
    poll_interval_s: float = option(
        30.0,
        "--poll-interval",
        help="llm --batch: seconds between batch status polls.",
        gt=0.0,
        allow_inf_nan=False,
    )
    seed: int = option(0, "--seed", help="Seed for the choice of phrasings.")
    image_root: Path | None = option(
        None,
        "--image-root",
        help="Folder the records' image paths are relative to (the convert ROOT), for rules "
        "that read pixels; needed by llm (the model sees the images).",
    )
    # per-dataset overrides of the converters' completeness (a YAML file on the command line)
    completeness: Mapping[str, LabelCompleteness] = option(
        {},
        "--completeness",
        help="YAML file overriding which classes each dataset labels exhaustively (exact "
        "counts and 'no' answers only for those; docs/instructions.md, Label completeness).",
        cli_type=Path,
    )
    max_side: int | None = None
    temperature: float = 0.2
    passes: tuple[str, ...] = ("local", "global", "multi_turn")
    colour_facts: bool = False  # read each object's palette colour for the table (~5 ms each)
    prepare_workers: int | None = None  # image-rendering processes; None: by the run's size

    @field_validator(*_BOUNDED, mode="wrap")
    @classmethod
    def _within_bounds(
        cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> object:
        """Refuse numbers that would silently disable a limit (NaN compares false with
        everything, so a NaN budget caps nothing) or fail deep in the client later."""
        try:
            return handler(value)
        except ValidationError as error:
            name = info.field_name or ""
            (flag,) = flags_of(cls, name)
            wrong = _requirement(cls.model_fields[name], error.errors()[0]["type"])
            raise InputError(f"{flag} {wrong}, got {value!r}") from None

    @field_validator("shard", mode="before")
    @classmethod
    def _parse_shard(cls, value: object) -> object:
        """``"I/N"`` (the command line) → (I, N)."""
        return parse_shard(value) if isinstance(value, str) else value

    @field_validator("detail")
    @classmethod
    def _known_detail(cls, value: str) -> str:
        if value not in DETAILS:
            raise InputError(f"unknown image detail {value!r}; expected low or high")
        return value

    _completeness = field_validator("completeness", mode="before")(completeness_table)

    @field_validator("passes")
    @classmethod
    def _known_passes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in PASS_NAMES]
        if unknown or not value:
            raise InputError(
                f"unknown pass {unknown[0] if unknown else ''!r}; known: {', '.join(PASS_NAMES)}"
            )
        return value

    def check(self) -> None:
        """Ready for an LLM run: a model named, and valid again (``model_copy(update=...)`` does
        not validate, and a run must not start on, say, a NaN budget set that way)."""
        if self.model is None:
            raise InputError("--generator llm and both need --model")
        type(self).model_validate(dict(self))


def _requirement(field: FieldInfo, error: str) -> str:
    """What a bounded number must be, in the words of the CLI's errors."""
    if error.startswith("int_"):
        return "must be a whole number"
    (bound,) = [limit for limit in field.metadata if isinstance(limit, Ge | Gt)]
    if isinstance(bound, Gt):
        return f"must be a finite number greater than {bound.gt:g}"
    if field.annotation is int:
        return "must not be negative" if bound.ge == 0 else f"must be at least {bound.ge}"
    return f"must be a finite number at least {bound.ge:g}"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (0 <= I < N) → (I, N); None → no sharding."""
    if text is None:
        return None
    index, sep, count = text.partition("/")
    if not (sep and index.strip().isdigit() and count.strip().isdigit()):
        raise InputError(f"--shard must be I/N (e.g. 0/4), got {text!r}")
    i, n = int(index), int(count)
    if not 0 <= i < n:
        raise InputError(f"--shard {text}: I must be in 0..{n - 1}")
    return i, n


def read_api_key(settings: LlmSettings) -> str:
    """The key from the environment variable named by the settings (never from a file or flag)."""
    key = os.environ.get(settings.api_key_env, "")
    if key:
        return key
    if settings.base_url is None:
        raise RsgptError(
            f"no API key: set the environment variable {settings.api_key_env} "
            "(or name another with --api-key-env)"
        )
    return NO_KEY


class Redactor:
    """Removes the API key from any text before it is printed or written."""

    def __init__(self, key: str) -> None:
        self._key = key if key and key != NO_KEY else None

    def __call__(self, text: str) -> str:
        if self._key is None:
            return text
        text = text.replace(self._key, "[redacted]")
        # Servers echo a masked key (sk-abc***xyz): drop any 8+ character piece of it too.
        for size in (16, 12, 8):
            for start in range(0, max(len(self._key) - size + 1, 0)):
                piece = self._key[start : start + size]
                if piece in text:
                    text = text.replace(piece, "[redacted]")
        return text
