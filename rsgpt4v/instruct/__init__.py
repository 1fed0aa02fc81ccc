"""The ``instruct`` stage: records.jsonl → instructions.jsonl (rule-based generator)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.errors import InputError
from rsgpt4v.instruct.rules import RULE_TASKS, rule_instructions
from rsgpt4v.schema import JsonlWriter, Record, count_lines, read_jsonl

__all__ = ["RULE_TASKS", "InstructionSummary", "generate_instructions", "parse_tasks"]


@dataclass
class InstructionSummary:
    output: Path
    records: int = 0
    instructions: int = 0
    per_task: Counter[str] = field(default_factory=Counter)
    records_without_instructions: int = 0


def parse_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    """``"counting,grounding"`` → a validated list; None → every rule task."""
    if tasks is None:
        return list(RULE_TASKS)
    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in names if t not in RULE_TASKS]
    if unknown or not names:
        raise InputError(
            f"unknown task {unknown[0] if unknown else ''!r}; known: {', '.join(RULE_TASKS)}"
        )
    return names


def generate_instructions(
    records_path: str | Path,
    output: str | Path,
    *,
    tasks: str | Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[Iterable[Record], int | None], Iterable[Record]] | None = None,
) -> InstructionSummary:
    """Write the rule-based instructions of every record in records_path to output."""
    task_names = parse_tasks(tasks)
    summary = InstructionSummary(output=Path(output))
    records: Iterable[Record] = read_jsonl(records_path, Record)
    if progress is not None:
        records = progress(records, count_lines(records_path))
    with JsonlWriter(output) as writer:
        for record in records:
            summary.records += 1
            before = writer.count
            for instruction in rule_instructions(record, task_names, seed):
                writer.write(instruction)
                summary.per_task[instruction.task] += 1
            summary.records_without_instructions += writer.count == before
        summary.instructions = writer.count
    return summary
