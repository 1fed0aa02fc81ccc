"""The ``instruct`` stage with the rule generator: records.jsonl → instructions.jsonl.

The class vocabulary is read once, before the units (the negative and multiple-choice questions
of every unit draw on the same classes); each unit then writes the rule instructions of a line
range of the records, their object facts computed in batches. ``--mix`` weights and caps depend
on the order of the whole stream, so a mixed run is one unit on any engine.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rsgpt4v.collector import fewer_collections
from rsgpt4v.completeness import LabelCompleteness, load_completeness
from rsgpt4v.engines import run_stage
from rsgpt4v.engines.stage import FanOut, Progress, Unit, UnitOutputs, UnitRun
from rsgpt4v.engines.units import DEFAULT_UNIT_LINES, file_units, unit_models
from rsgpt4v.errors import InputError
from rsgpt4v.instruct.answerability import ModelInput
from rsgpt4v.instruct.attributes import cache_object_facts
from rsgpt4v.instruct.lines import RecordLines
from rsgpt4v.instruct.mix import MixConfig, Mixer, MixStats, load_mix
from rsgpt4v.instruct.rules import (
    FACT_TASKS,
    RULE_TASKS,
    RuleContext,
    rule_drafts,
    rule_instructions,
)
from rsgpt4v.instruct.settings import RulesSettings
from rsgpt4v.paths import ImageRoot
from rsgpt4v.problems import at_line
from rsgpt4v.schema import JsonlWriter, Record, count_lines
from rsgpt4v.vocabulary import dataset_completeness, dataset_vocabulary

# Records whose object facts are computed in one vectorised pass: enough to spread numpy's cost
# per call thin; larger batches measured slower again (their arrays outgrow the CPU caches).
FACTS_BATCH = 64


@dataclass
class InstructionSummary:
    output: Path
    records: int = 0
    instructions: int = 0
    per_task: Counter[str] = field(default_factory=Counter)
    records_without_instructions: int = 0
    mix: MixStats | None = None  # what --mix dropped, capped and repeated
    skips: Counter[str] = field(default_factory=Counter)  # what rules left unasked, and why
    model_input: str = ""  # the input sizes were judged at (ModelInput.describe)


@dataclass
class RulesStage:
    """The rule instructions of every record of ``records``, written to ``output``.

    ``image_root``: the folder the records' image paths are relative to (the convert ROOT),
    for rules that read pixels. ``vocabulary_from``: the records file whose classes the negative
    and multiple-choice questions draw on (default ``records``; a ``--shard`` run passes its
    whole input, so a record gets the same questions as in the unsharded run).
    """

    records: Path
    output: Path
    settings: RulesSettings = field(default_factory=RulesSettings)
    image_root: Path | None = None
    vocabulary_from: Path | None = None
    lines_per_unit: int = DEFAULT_UNIT_LINES
    #: ``--mix`` loaded (or given loaded); read by :meth:`units` from ``settings.mix``.
    mix: MixConfig | None = None
    #: What every unit shares, read once by :meth:`units` (it travels with the stage).
    context: RuleContext | None = None
    description = "instruct"

    @property
    def shards_beside(self) -> Path:
        return self.output

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        settings = self.settings
        self.context = rule_context(
            self.records,
            self.image_root,
            self.vocabulary_from,
            settings.completeness,
            settings.model_input(),
        )
        if settings.mix is not None:
            self.mix = load_mix(settings.mix, RULE_TASKS)
        whole = self.mix is not None  # a mix needs the whole stream, in order
        return file_units(self.records, fan_out, None if whole else self.lines_per_unit)

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        assert self.context is not None  # units() ran first
        context = dataclasses.replace(self.context, skips=Counter())  # this unit's own
        tasks, seed = self.settings.task_names(), self.settings.seed
        mixer = Mixer(self.mix, seed) if self.mix is not None else None
        numbered: Iterable[tuple[int, Record]] = unit_models(unit, Record)
        if progress is not None:
            numbered = progress(numbered, count_lines(self.records))
        lines_of: dict[int, int] = {}  # id(record) → its line, for the current batch

        def located(record: Record, error: InputError) -> InputError:
            """The error at the record's line: a missing image alone does not say which record."""
            return at_line(error, unit["path"], lines_of[id(record)], record.id)

        if mixer is None:
            lines_of_record = partial(rule_lines, tasks=tasks, seed=seed, context=context)
        else:
            lines_of_record = partial(
                _mixed_lines, tasks=tasks, seed=seed, context=context, mixer=mixer
            )
        totals, per_task = Counter[str](), Counter[str]()
        with fewer_collections():
            for batch in batches_with_facts(_noting(numbered, lines_of), tasks, context, located):
                for record in batch:
                    try:
                        lines, tasks_of_lines = lines_of_record(record)
                    except InputError as error:
                        raise located(record, error) from None
                    yield from lines
                    per_task.update(tasks_of_lines)
                    totals["records"] += 1
                    totals["without"] += not lines
                lines_of.clear()
        mixed = dataclasses.asdict(mixer.finish()) if mixer is not None else None
        return {"totals": totals, "per_task": per_task, "skips": context.skips, "mix": mixed}

    def finish(self, outputs: UnitOutputs) -> InstructionSummary:
        assert self.context is not None
        summary = InstructionSummary(self.output, model_input=self.context.model_input.describe())
        with JsonlWriter(self.output) as writer:
            for row in outputs.rows():  # one at a time: a record's line can be megabytes
                writer.write_line(row)
        summary.instructions = writer.count
        for counts in outputs.counts:
            summary.records += counts["totals"].get("records", 0)
            summary.records_without_instructions += counts["totals"].get("without", 0)
            summary.per_task.update(counts["per_task"])
            summary.skips.update(counts["skips"])
            if counts["mix"] is not None:
                summary.mix = MixStats(**counts["mix"])
        return summary


def generate_instructions(
    records_path: str | Path,
    output: str | Path,
    *,
    tasks: str | Sequence[str] | None = None,
    seed: int = 0,
    image_root: str | Path | None = None,
    progress: Progress | None = None,
    mix: str | Path | MixConfig | None = None,
    vocabulary_from: str | Path | None = None,
    completeness: str | Path | Mapping[str, LabelCompleteness] | None = None,
    model_input: ModelInput | None = None,
    engine: str = "local",
    address: str | None = None,
) -> InstructionSummary:
    """Write the rule-based instructions of every record in records_path to output.

    ``mix`` (a mix.yaml path or a loaded config, see :mod:`rsgpt4v.instruct.mix`) weights and
    caps what is written, per source and task; ``completeness`` (a YAML file or a table,
    :mod:`rsgpt4v.completeness`) overrides which classes each dataset labels exhaustively;
    ``model_input`` is the picture the model will be shown, at which tiny objects are not asked
    about (:mod:`rsgpt4v.instruct.answerability`). See :class:`RulesStage` for the rest.
    """
    model_input = model_input or ModelInput()
    settings = RulesSettings(
        tasks=tasks,
        seed=seed,
        mix=None if mix is None or isinstance(mix, MixConfig) else Path(mix),
        model_family=model_input.family,
        input_size=model_input.size,
        completeness=Path(completeness) if isinstance(completeness, str) else completeness,
    )
    stage = RulesStage(
        Path(records_path),
        Path(output),
        settings,
        image_root=Path(image_root) if image_root is not None else None,
        vocabulary_from=Path(vocabulary_from) if vocabulary_from is not None else None,
        mix=mix if isinstance(mix, MixConfig) else None,
    )
    return run_stage(stage, engine, address, progress)


def rule_context(
    records_path: str | Path,
    image_root: str | Path | None = None,
    vocabulary_from: str | Path | None = None,
    completeness: str | Path | Mapping[str, LabelCompleteness] | None = None,
    model_input: ModelInput | None = None,
) -> RuleContext:
    """What the rules know beyond each record."""
    ImageRoot.of(image_root)  # a folder, or an error naming it
    vocabulary = dataset_vocabulary(vocabulary_from or records_path)
    source = completeness if isinstance(completeness, str | Path) else None
    if source is not None:
        completeness = load_completeness(source)
    check_partial_classes(completeness or {}, vocabulary, source)  # type: ignore[arg-type]
    return RuleContext(
        vocabulary=vocabulary,
        image_root=Path(image_root).resolve() if image_root is not None else None,
        completeness=dataset_completeness(vocabulary, completeness),  # type: ignore[arg-type]
        model_input=model_input or ModelInput(),
    )


def check_partial_classes(
    table: Mapping[str, LabelCompleteness],
    vocabulary: Mapping[str, tuple[str, ...]],
    source: str | Path | None,
) -> None:
    """A class the completeness file names must be one of its dataset's classes: a misspelt one
    ("ships") would otherwise leave the real class exhaustive without a word."""
    for dataset, entry in table.items():
        known = vocabulary.get(dataset)
        if known is None or isinstance(entry.partial, str):
            continue  # a dataset this input does not hold, or "all"
        unknown = sorted(set(entry.partial) - set(known))
        if unknown:
            raise InputError(
                f"completeness entry {dataset!r}: {unknown[0]!r} is not a class of that dataset "
                f"(its classes: {', '.join(known)})",
                file=source,
                entry=dataset,
                value=unknown[0],
            )


def _noting(numbered: Iterable[tuple[int, Record]], lines_of: dict[int, int]) -> Iterator[Record]:
    """The records, each one's line noted in ``lines_of`` (cleared per batch)."""
    for number, record in numbered:
        lines_of[id(record)] = number
        yield record


def rule_lines(
    record: Record, tasks: Sequence[str], seed: int, context: RuleContext
) -> tuple[list[str], list[str]]:
    """The JSON lines of one record's rule instructions, and the task of each line.

    What the instruct stage writes for the record without ``--mix``: the bytes of
    ``Instruction.model_dump_json`` without building the models (:mod:`rsgpt4v.instruct.lines`).
    """
    drafts = list(rule_drafts(record, tasks, seed, context))
    return list(map(RecordLines(record).line, drafts)), [draft.task for draft in drafts]


def _mixed_lines(
    record: Record, tasks: Sequence[str], seed: int, context: RuleContext, mixer: Mixer
) -> tuple[list[str], list[str]]:
    """The record's instructions that the mix keeps (and repeats), as lines and their tasks."""
    kept = [
        instruction
        for generated in rule_instructions(record, tasks, seed, context)
        for instruction in mixer.apply(generated, record.dataset)
    ]
    lines = [instruction.model_dump_json(exclude_none=False) + "\n" for instruction in kept]
    return lines, [instruction.task for instruction in kept]


def batches_with_facts(
    records: Iterable[Record],
    tasks: Sequence[str],
    context: RuleContext,
    locate: Callable[[Record, InputError], InputError] | None = None,
) -> Iterator[list[Record]]:
    """Records in small batches, their object facts computed per batch when a task needs them.

    Facts are vectorised over FACTS_BATCH records at once; the batches are read lazily. When a
    batch fails (an image missing or outside the root), its records are tried one by one to find
    the one to blame, and ``locate`` turns the error into one that names it.
    """
    uses_facts = bool(FACT_TASKS.intersection(tasks))
    for batch in _batches(records, FACTS_BATCH if uses_facts else 1):
        if uses_facts:
            try:
                cache_object_facts(batch, context.image_root)
            except InputError:
                if locate is None:
                    raise
                for record in batch:
                    try:
                        cache_object_facts([record], context.image_root)
                    except InputError as error:
                        raise locate(record, error) from None
                raise
        yield batch


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Records in lists of up to ``size``, read lazily (memory stays flat in the input size)."""
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
