"""The ``validate`` stage: instructions + records → clean instructions, rejects, report.

Records are loaded once (they are the ground truth every instruction is checked against);
instructions are streamed: each is checked (:mod:`rsgpt4v.validate.checks`), compared with the
earlier ones for duplicates, looked up in the leakage table, written to the clean file or to the
rejects file, and counted for the report. A line that is not a valid instruction is a rejection
too, so one bad line never stops a long run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rsgpt4v.atomic import commit, create_staged
from rsgpt4v.errors import InputError
from rsgpt4v.paths import ImageRoot, under_root
from rsgpt4v.problems import LineNumbers, at_line, rejects_path
from rsgpt4v.report.stats import ReportStats
from rsgpt4v.schema import Instruction, JsonlWriter, Record, Source, count_lines, jsonl_lines
from rsgpt4v.validate.checks import (
    CheckSettings,
    Findings,
    Rejection,
    check_regions,
    check_structure,
    check_text,
)
from rsgpt4v.validate.importer import (
    FORMATS,
    ImportedItem,
    detect_format,
    read_conversations,
)
from rsgpt4v.validate.leakage import DEFAULT_MAX_DISTANCE, Leak, find_leaks, fingerprint_records
from rsgpt4v.validate.records import RecordTable

_SPACES = re.compile(r"\s+")
Progress = Callable[[Iterable[Any], int | None], Iterable[Any]]


@dataclass
class ValidationSummary:
    """What a validation run read, kept and rejected, and where it wrote it."""

    instructions: int = 0
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    output: Path | None = None
    rejects_file: Path | None = None
    report: Path | None = None
    leakage_checked: bool = False
    leaked_records: int = 0
    format: str = "instructions"
    iou: float = 0.5
    variety: dict[str, Any] = field(default_factory=dict)  # report.stats.PhrasingVariety


@dataclass(frozen=True)
class ValidationOptions:
    """Knobs of a run; ``checks`` holds the IoU threshold and the text box style."""

    checks: CheckSettings = field(default_factory=CheckSettings)
    fmt: str = "auto"
    image_root: Path | None = None
    leakage: bool = True
    max_distance: int = DEFAULT_MAX_DISTANCE
    samples: int = 48
    seed: int = 0


def validate_instructions(
    instructions: str | Path,
    records: str | Path,
    output: str | Path | None = None,
    *,
    report_dir: str | Path | None = None,
    options: ValidationOptions | None = None,
    progress: Callable[[str], Progress] | None = None,
) -> ValidationSummary:
    """Check every instruction against its record; write CLEAN, the rejects and the report.

    Without ``output`` nothing is kept, and the rejects go next to the instructions file
    (``instructions.jsonl.rejects.jsonl``). Leakage needs the pixels, so it runs only with an
    image root.
    """
    options = options or ValidationOptions()
    instructions = Path(instructions)
    if options.fmt not in FORMATS:
        raise InputError(f"unknown format {options.fmt!r}; expected one of {', '.join(FORMATS)}")
    ImageRoot.of(options.image_root)  # a folder, or an error naming it
    fmt = detect_format(instructions) if options.fmt == "auto" else options.fmt
    summary = ValidationSummary(
        format=fmt, output=Path(output) if output else None, iou=options.checks.iou
    )
    stats = ReportStats(samples=options.samples, seed=options.seed)
    with RecordTable(records) as table:
        leaks: dict[str, Leak] = {}
        if options.leakage and options.image_root is not None:
            leaks = _leaks(table, options, progress)
            summary.leakage_checked, summary.leaked_records = True, len(leaks)
        items = _items(instructions, fmt, table)
        if progress is not None:
            lines = instructions.suffix == ".jsonl" or fmt == "instructions"
            items = progress("validate")(items, count_lines(instructions) if lines else None)
        checker = Checker(table, options, leaks)
        _stream(items, checker, instructions, summary, stats)
    summary.variety = stats.variety.summary()
    if report_dir is not None:
        from rsgpt4v.report.html import write_report

        summary.report = write_report(report_dir, stats, summary, options.image_root)
    return summary


def _stream(
    items: Iterable[tuple[int | None, Instruction | None, Record | None, list[Rejection]]],
    checker: Checker,
    instructions: Path,
    summary: ValidationSummary,
    stats: ReportStats,
) -> None:
    """Check every item; write the kept ones to the output and the rejections beside it."""
    with maybe_writer(summary.output) as writer, RejectsWriter(summary, instructions) as bad:
        for line, instruction, record, early in items:
            findings = Findings(rejections=list(early))
            if instruction is not None:
                checker.check(instruction, record, findings)
            summary.instructions += 1
            stats.add(instruction, record, findings)
            if findings.rejections:
                bad.reject(findings.rejections, line)
            else:
                summary.kept += 1
                if writer is not None:
                    writer.write(instruction)


class RejectsWriter:
    """The rejects file beside the output, and the count of each reason.

    Written to a temporary file and renamed at the end only when something was rejected (a run
    with nothing rejected leaves no rejects file, and a failed run leaves the earlier one whole,
    as it leaves the earlier clean file).
    """

    def __init__(self, summary: ValidationSummary, instructions: Path) -> None:
        self.summary, self.instructions = summary, instructions
        self.path = rejects_path(summary.output or instructions)
        self.reasons: dict[str, int] = {}

    def __enter__(self) -> RejectsWriter:
        descriptor, self.partial = create_staged(self.path)  # new: a planted link is not followed
        self._handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="\n")
        return self

    def reject(self, rejections: list[Rejection], line: int | None) -> None:
        """One rejected instruction (read at ``line`` of the input) with all its reasons."""
        self.summary.rejected += 1
        for rejection in rejections:
            self.reasons[rejection.code] = self.reasons.get(rejection.code, 0) + 1
            self._handle.write(reject_line(rejection, self.instructions, line) + "\n")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._handle.close()
        try:
            if kind is not None:
                return
            if self.summary.rejected:
                commit(self.partial, self.path)
                self.summary.rejects_file = self.path
            else:
                self.path.unlink(missing_ok=True)  # an earlier run's, stale now
        finally:
            self.partial.unlink(missing_ok=True)  # gone already once committed
        self.summary.reasons = dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))


class Checker:
    """Every check of one instruction, with what the run shares: records, earlier ones, leaks."""

    def __init__(self, table: RecordTable, options: ValidationOptions, leaks: dict[str, Leak]):
        self.table, self.options, self.leaks = table, options, leaks
        self.duplicates: dict[bytes, str] = {}

    def check(self, instruction: Instruction, record: Record | None, findings: Findings) -> None:
        check_structure(instruction, findings)
        if record is None:
            findings.add(
                "unknown_record",
                instruction,
                f"no record {instruction.record_id!r} or with image {instruction.image!r}",
                instruction.record_id or instruction.image,
            )
        elif list(instruction.image_size) != [record.image.width, record.image.height]:
            findings.add(
                "image_size",
                instruction,
                f"image_size {instruction.image_size}, the record's image is "
                f"{record.image.width}x{record.image.height}",
                instruction.image_size,
            )
        check_regions(instruction, record, findings)
        if record is not None:
            vocabulary = self.table.vocabulary(record)
            check_text(instruction, record, vocabulary, self.options.checks, findings)
        key = conversation_key(instruction)
        first = self.duplicates.setdefault(key, instruction.id)
        if first != instruction.id:
            findings.add("duplicate", instruction, f"same image and conversation as {first}", first)
        leak = self.leaks.get(record.id) if record is not None else None
        if leak is not None:
            how = "identical bytes" if leak.distance == 0 else f"phash distance {leak.distance}"
            findings.add(
                "leaked_image",
                instruction,
                f"image of {leak.record_id} ({leak.split}) is also {leak.other_id} "
                f"({leak.other_split}), {how}",
                leak.other_id,
            )


def conversation_key(instruction: Instruction) -> bytes:
    """The image and the conversation, lower case with whitespace collapsed, as a digest."""
    text = "\x1e".join(
        m.role + "\x1f" + _SPACES.sub(" ", m.content.strip().lower()) for m in instruction.messages
    )
    return hashlib.blake2b(f"{instruction.image}\x1d{text}".encode(), digest_size=16).digest()


def _items(
    path: Path, fmt: str, table: RecordTable
) -> Iterator[tuple[int | None, Instruction | None, Record | None, list[Rejection]]]:
    """(line, instruction, its record, rejections found while reading) for every item."""
    if fmt == "instructions":
        yield from _instruction_lines(path, table)
        return
    for item in read_conversations(path, fmt):
        record = table.find(None, item.image) if item.image else None
        if item.problem is not None or record is None:
            reason = item.problem or f"no record with image {item.image!r}"
            code = "schema" if item.problem else "unknown_record"
            message = f"{item.id} (item {item.index}): {reason}"
            yield item.line, None, None, [Rejection(code, item.id, message, item.image)]
            continue
        yield item.line, _imported_instruction(item, record, fmt), record, []


def _imported_instruction(item: ImportedItem, record: Record, fmt: str) -> Instruction:
    return Instruction(
        id=item.id,
        record_id=record.id,
        image=record.image.path,
        image_size=[record.image.width, record.image.height],
        task="imported",
        source=Source(generator=f"import:{fmt}", template="", original_image=item.image),
        messages=item.messages,
        regions={},
    )


def schema_rejection(number: int, error: ValidationError) -> Rejection:
    """The rejection of line ``number``, which is not an instruction: its first schema error."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    entry = f"line {number}"
    return Rejection(
        "schema", entry, f"{entry}: not a valid instruction: {where}: {first['msg']}", where
    )


def _instruction_lines(
    path: Path, table: RecordTable
) -> Iterator[tuple[int, Instruction | None, Record | None, list[Rejection]]]:
    for number, text in jsonl_lines(path):  # a line that is not UTF-8: InputError naming it
        try:
            instruction = Instruction.model_validate_json(text)
        except ValidationError as error:
            yield number, None, None, [schema_rejection(number, error)]
            continue
        yield number, instruction, table.find(instruction.record_id, instruction.image), []


def _leaks(
    table: RecordTable, options: ValidationOptions, progress: Callable[[str], Progress] | None
) -> dict[str, Leak]:
    """The records whose image also appears in another split, by record id.

    An image that escapes the root or cannot be read is an error naming the records file, the
    record's line and id: the image path alone does not say which record to fix.
    """
    root = options.image_root or Path()
    places = list(table.places())
    items: list[tuple[str, str, Path]] = []
    try:
        for record_id, split, image in places:
            items.append((record_id, split, under_root(root, image, entry=record_id)))
        bar = progress("fingerprint images") if progress is not None else None
        entries = fingerprint_records(items, bar)
    except InputError as error:
        # under_root failed on the next item; a read failure names the image file
        at = next((n for n, item in enumerate(items) if str(item[2]) == error.file), len(items))
        if at >= len(places):
            raise
        with LineNumbers(table.path) as lines:
            raise at_line(error, table.path, lines(at), places[at][0]) from None
    return find_leaks(entries, options.max_distance)


def reject_line(rejection: Rejection, path: Path, line: int | None) -> str:
    """A rejects-file line: rsgpt4v.problems fields plus the human message."""
    return json.dumps(
        {
            "reason": rejection.code,
            "file": str(path),
            "line": line,
            "value": None if rejection.value is None else str(rejection.value),
            "entry": rejection.instruction,
            "message": rejection.message,
        },
        ensure_ascii=False,
    )


def maybe_writer(output: str | Path | None) -> JsonlWriter | nullcontext[None]:
    return JsonlWriter(output) if output else nullcontext()
