"""Mixing: per-source and per-task weights and caps over a stream of instructions.

``mix.yaml``::

    sources: {dota-v1.0: {weight: 1.0, cap: 5000}, rsicd: {weight: 0.3}}
    tasks: {counting: {weight: 0.5}, grounding: {cap: 1000}, vqa: {weight: 2}}

An instruction's weight is its source's (record dataset) weight times its task's weight (1 when
not listed). Weight w gives ``floor(w)`` copies plus one more with probability ``w - floor(w)``,
drawn from a hash of (seed, instruction id): a weight below 1 keeps that share, and the choice
of one instruction never depends on the others, so mixing streams and a shard or a split input
keeps exactly what the whole would. Extra copies get ids ``<id>#rep-1``, ``#rep-2`` … A cap
counts written instructions (copies included) per source and per task, in output order; caps
are the one thing that depends on order, so they apply per output file.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import decode_utf8
from rsgpt4v.schema import Instruction


class MixRule(BaseModel):
    """Weight and cap of one source or task."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="Expected copies kept of each instruction."
    )
    cap: int | None = Field(None, ge=0, description="Most instructions written; none: no cap.")


class MixConfig(BaseModel):
    """A mix file: rules per source (dataset name) and per task."""

    model_config = ConfigDict(extra="forbid")
    sources: dict[str, MixRule] = Field(default_factory=dict)
    tasks: dict[str, MixRule] = Field(default_factory=dict)


_NEUTRAL = MixRule()


def load_mix(path: str | Path, known_tasks: Iterable[str]) -> MixConfig:
    """Read and check a mix file; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise InputError("mix file not found", file=path)
    try:
        data = yaml.safe_load(decode_utf8(path.read_bytes(), path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            f"not valid YAML ({getattr(error, 'problem', error)})", file=path, line=line
        ) from None
    except RecursionError:
        raise InputError("YAML nested too deeply to read", file=path) from None
    try:
        config = MixConfig.model_validate(data or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        value = first.get("input")
        if first["type"] == "extra_forbidden":
            allowed = "weight, cap" if len(first["loc"]) == 3 else "sources, tasks"
            reason, value = f"unknown key {first['loc'][-1]!r}; expected {allowed}", None
        else:
            reason = first["msg"]
        raise InputError(reason, file=path, entry=where, value=value) from None
    known = list(known_tasks)
    for task in config.tasks:
        if task not in known:
            reason = f"unknown task {task!r}; known: {', '.join(known)}"
            raise InputError(reason, file=path, entry=f"tasks.{task}")
    return config


@dataclass
class MixStats:
    """What a mix did: instructions dropped by weight or by a cap, extra copies written."""

    dropped: int = 0
    capped: int = 0
    repeated: int = 0
    unused_sources: list[str] = field(default_factory=list)


class Mixer:
    """Applies a mix to instructions one at a time, in output order."""

    def __init__(self, config: MixConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.stats = MixStats()
        self._per_source: Counter[str] = Counter()
        self._per_task: Counter[str] = Counter()
        self._seen_sources: set[str] = set()

    def copies(self, instruction: Instruction, source: str) -> int:
        """How many copies of the instruction the weights ask for (before caps)."""
        weight = self._rule("sources", source).weight * self._rule("tasks", instruction.task).weight
        whole = int(weight)
        return whole + (keep_draw(self.seed, instruction.id) < weight - whole)

    def apply(self, instruction: Instruction, source: str) -> Iterator[Instruction]:
        """The copies of one instruction (of dataset ``source``) that the mix writes."""
        self._seen_sources.add(source)
        copies = self.copies(instruction, source)
        if copies == 0:
            self.stats.dropped += 1
        source_cap = self._rule("sources", source).cap
        task_cap = self._rule("tasks", instruction.task).cap
        for copy in range(copies):
            if (source_cap is not None and self._per_source[source] >= source_cap) or (
                task_cap is not None and self._per_task[instruction.task] >= task_cap
            ):
                self.stats.capped += copies - copy
                return
            self._per_source[source] += 1
            self._per_task[instruction.task] += 1
            if copy == 0:
                yield instruction
            else:
                self.stats.repeated += 1
                yield instruction.model_copy(update={"id": f"{instruction.id}#rep-{copy}"})

    def finish(self) -> MixStats:
        """The stats, with the mix's sources that matched no record (likely typos)."""
        self.stats.unused_sources = sorted(set(self.config.sources) - self._seen_sources)
        return self.stats

    def _rule(self, kind: str, name: str) -> MixRule:
        rules = self.config.sources if kind == "sources" else self.config.tasks
        return rules.get(name, _NEUTRAL)


def keep_draw(seed: int, instruction_id: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the instruction id alone."""
    digest = hashlib.blake2b(f"{seed}|{instruction_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
