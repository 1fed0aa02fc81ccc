"""``instruct --engine ray`` with the rule generator: one task per line range of the records.

The driver reads the class vocabulary once (the cheap first pass of the local engine), so every
task asks negative and multiple-choice questions from the same classes; each task runs
:func:`rsgpt4v.instruct.rule_lines` on its records (their facts computed in batches by
:func:`rsgpt4v.instruct.batches_with_facts`), the very functions the local engine runs, and
writes its shard; the shards, joined in unit order, are the local engine's
file. ``--mix`` weights and caps depend on the order of the whole stream, so it stays with the
local engine.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.errors import InputError
from rsgpt4v.instruct import (
    InstructionSummary,
    batches_with_facts,
    parse_tasks,
    rule_context,
    rule_lines,
)
from rsgpt4v.instruct.answerability import ModelInput
from rsgpt4v.instruct.rules import RuleContext
from rsgpt4v.scale.merge import concatenate
from rsgpt4v.scale.session import Unit, ray_session, run_units
from rsgpt4v.scale.shards import remove_shards, shard_path, shards_folder, write_shard
from rsgpt4v.scale.units import DEFAULT_UNIT_LINES, line_units, unit_models
from rsgpt4v.schema import Record


def _rules_unit(
    unit: Unit, *, tasks: list[str], seed: int, context: RuleContext, folder: str
) -> dict:
    context = dataclasses.replace(context, skips=Counter())  # this unit's own, not the worker's
    lines: list[str] = []
    per_task: Counter[str] = Counter()
    records = without = 0
    for batch in batches_with_facts(unit_models(unit, Record), tasks, context):
        for record in batch:
            records += 1
            record_lines, record_tasks = rule_lines(record, tasks, seed, context)
            without += not record_lines
            per_task.update(record_tasks)
            lines += record_lines
    shard = write_shard(shard_path(folder, unit["index"]), lines)
    return {
        "shard": shard,
        "records": records,
        "without": without,
        "per_task": per_task,
        "skips": context.skips,
    }


def instruct_rules_ray(
    records_path: str | Path,
    output: str | Path,
    *,
    tasks: str | Sequence[str] | None = None,
    seed: int = 0,
    image_root: str | Path | None = None,
    mix: object = None,
    address: str | None = None,
    progress: object = None,
    unit_lines: int = DEFAULT_UNIT_LINES,
    vocabulary_from: str | Path | None = None,
    completeness: str | Path | Mapping[str, LabelCompleteness] | None = None,
    model_input: ModelInput | None = None,
) -> InstructionSummary:
    """:func:`rsgpt4v.instruct.generate_instructions` on Ray: the same file.

    ``progress`` is unused: Ray Data shows its own progress bars on a terminal;
    ``vocabulary_from`` is as in the local function.
    """
    if mix is not None:
        raise InputError("--mix needs the whole stream in order: use --engine local with --mix")
    task_names = parse_tasks(tasks)
    context = rule_context(records_path, image_root, vocabulary_from, completeness, model_input)
    units = line_units(records_path, unit_lines)
    folder = shards_folder(output)
    work = partial(
        _rules_unit,
        tasks=task_names,
        seed=seed,
        context=context,
        folder=str(folder),
    )
    with ray_session(address):
        results = run_units(units, work)
    summary = InstructionSummary(output=Path(output), model_input=context.model_input.describe())
    summary.instructions = concatenate([result["shard"] for result in results], output)
    for result in results:
        summary.records += result["records"]
        summary.records_without_instructions += result["without"]
        summary.per_task.update(result["per_task"])
        summary.skips.update(result["skips"])
    remove_shards(folder)
    return summary
