"""The ``instruct`` stage: records.jsonl → instructions.jsonl (rule-based generator)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.collector import fewer_collections
from rsgpt4v.completeness import LabelCompleteness, load_completeness
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
from rsgpt4v.instruct.vocabulary import dataset_completeness, dataset_vocabulary
from rsgpt4v.paths import ImageRoot
from rsgpt4v.problems import LineNumbers, at_line
from rsgpt4v.schema import JsonlWriter, Record, count_lines, read_jsonl

__all__ = [
    "RULE_TASKS",
    "InstructionSummary",
    "batches_with_facts",
    "check_partial_classes",
    "dataset_vocabulary",
    "generate_instructions",
    "parse_tasks",
    "rule_context",
    "rule_lines",
]

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
    image_root: str | Path | None = None,
    progress: Callable[[Iterable[Record], int | None], Iterable[Record]] | None = None,
    mix: str | Path | MixConfig | None = None,
    vocabulary_from: str | Path | None = None,
    completeness: str | Path | Mapping[str, LabelCompleteness] | None = None,
    model_input: ModelInput | None = None,
) -> InstructionSummary:
    """Write the rule-based instructions of every record in records_path to output.

    ``image_root`` is the folder the records' image paths are relative to (the convert ROOT),
    for rules that read pixels. ``mix`` (a mix.yaml path or a loaded config, see
    :mod:`rsgpt4v.instruct.mix`) weights and caps what is written, per source and task.
    ``vocabulary_from`` is the records file whose classes the negative and multiple-choice
    questions draw on (default: records_path); a shard passes its whole input, so a record gets
    the same questions in a shard as in the unsharded run. ``completeness`` (a YAML file or a
    table, :mod:`rsgpt4v.completeness`) overrides which classes each dataset labels
    exhaustively; ``model_input`` is the picture the model will be shown, at which tiny objects
    are not asked about (:mod:`rsgpt4v.instruct.answerability`).
    """
    task_names = parse_tasks(tasks)
    if mix is not None and not isinstance(mix, MixConfig):
        mix = load_mix(mix, RULE_TASKS)
    mixer = Mixer(mix, seed) if mix is not None else None
    context = rule_context(records_path, image_root, vocabulary_from, completeness, model_input)
    summary = InstructionSummary(output=Path(output), model_input=context.model_input.describe())
    numbers: dict[int, int] = {}  # id(record) → its place in the file, for the current batch
    records: Iterable[Record] = _numbered(read_jsonl(records_path, Record), numbers)
    if progress is not None:
        records = progress(records, count_lines(records_path))
    with (
        JsonlWriter(output) as writer,
        fewer_collections(),
        LineNumbers(records_path) as line_of,
    ):

        def locate(record: Record, error: InputError) -> InputError:
            """The error at the record's line: a missing image alone does not say which record."""
            return at_line(error, records_path, line_of(numbers[id(record)]), record.id)

        for batch in batches_with_facts(records, task_names, context, locate):
            for record in batch:
                summary.records += 1
                before = writer.count
                try:
                    if mixer is None:
                        lines, tasks_of_lines = rule_lines(record, task_names, seed, context)
                        writer.write_lines(lines)
                        summary.per_task.update(tasks_of_lines)
                    else:
                        for generated in rule_instructions(record, task_names, seed, context):
                            for instruction in mixer.apply(generated, record.dataset):
                                writer.write(instruction)
                                summary.per_task[instruction.task] += 1
                except InputError as error:
                    raise locate(record, error) from None
                summary.records_without_instructions += writer.count == before
            numbers.clear()
        summary.instructions = writer.count
    if mixer is not None:
        summary.mix = mixer.finish()
    summary.skips = context.skips
    return summary


def rule_context(
    records_path: str | Path,
    image_root: str | Path | None = None,
    vocabulary_from: str | Path | None = None,
    completeness: str | Path | Mapping[str, LabelCompleteness] | None = None,
    model_input: ModelInput | None = None,
) -> RuleContext:
    """What the rules know beyond each record, for the local and the Ray engine alike."""
    ImageRoot.of(image_root)  # a folder, or an error naming it
    vocabulary = dataset_vocabulary(vocabulary_from or records_path)
    source = completeness if isinstance(completeness, str | Path) else None
    if source is not None:
        completeness = load_completeness(source)
    check_partial_classes(completeness or {}, vocabulary, source)
    return RuleContext(
        vocabulary=vocabulary,
        image_root=Path(image_root).resolve() if image_root is not None else None,
        completeness=dataset_completeness(vocabulary, completeness),
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


def _numbered(records: Iterable[Record], numbers: dict[int, int]) -> Iterator[Record]:
    """The records, each one's place in the file noted in ``numbers`` (cleared per batch)."""
    for number, record in enumerate(records):
        numbers[id(record)] = number
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
