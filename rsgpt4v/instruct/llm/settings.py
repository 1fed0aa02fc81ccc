"""What decides a run of the LLM passes, and the API key: read from the environment, never shown.

The key is read from the variable that ``--api-key-env`` names and handed to the client only;
:class:`Redactor` scrubs it (and any 8+ character piece of it, as servers echo masked keys) from
every text rsgpt4v prints or writes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.instruct.llm.selection import MAX_CROPS, MAX_LISTED_OBJECTS, TABLE_BYTES, ObjectBudget

NO_KEY = "unused"  # local servers (vLLM, Ollama) take any key; the SDK wants one


@dataclass
class LlmSettings:
    """Everything that decides how the LLM passes run (see ``rsgpt4v instruct --help``)."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    cache_dir: Path | None = None
    budget_usd: float | None = None
    detail: str = "low"
    max_side: int | None = None
    temperature: float = 0.2
    seed: int = 0
    max_retries: int = 4
    timeout_s: float = 120.0
    passes: tuple[str, ...] = ("local", "global", "multi_turn")
    prices: str | Path | None = None
    shard: tuple[int, int] | None = None
    image_root: Path | None = None
    batch: bool = False
    poll_interval_s: float = 30.0
    colour_facts: bool = False  # read each object's palette colour for the table (~5 ms each)
    prepare_workers: int | None = None  # image-rendering processes; None: by the run's size
    max_objects: int = MAX_LISTED_OBJECTS  # rows of the prompts' object table
    max_crops: int = MAX_CROPS  # crops of small objects the local pass may add
    # per-dataset overrides of the converters' completeness (instruct --completeness)
    completeness: Mapping[str, LabelCompleteness] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    def object_budget(self) -> ObjectBudget:
        """The objects a prompt lists and the crops it may add (selection.py)."""
        return ObjectBudget(self.max_objects, TABLE_BYTES, self.max_crops)

    def check(self) -> None:
        """Refuse numbers that would silently disable a limit (NaN compares false with
        everything, so a NaN budget caps nothing) or fail deep in the client later."""
        _at_least("--budget-usd", self.budget_usd, 0.0, open_=False)
        _at_least("--timeout", self.timeout_s, 0.0, open_=True)
        _at_least("--poll-interval", self.poll_interval_s, 0.0, open_=True)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise InputError(f"--max-retries must be a whole number, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise InputError(f"--max-retries must not be negative, got {self.max_retries}")
        self.object_budget()  # --max-objects at least 1, --max-crops not negative


def _at_least(option: str, value: float | None, low: float, *, open_: bool) -> None:
    """``value`` (None: unset) finite and >= low (> low when ``open_``), else a one-line error."""
    if value is None:
        return
    if not math.isfinite(value) or value < low or (open_ and value == low):
        relation = "greater than" if open_ else "at least"
        raise InputError(f"{option} must be a finite number {relation} {low:g}, got {value}")


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
