"""The checks of ``validate``: instructions + records → clean instructions, rejects, report.

Each unit (a line range of the instructions; the whole file on the local engine) checks its
instructions against their records (:mod:`rsgpt4v.validate.checks`) and yields one row per line,
as plain JSON (never pickle: on a cluster the rows are shards on shared storage): the line, the
instruction as the clean file holds it, its record, the digest of its conversation, its
rejections and the boxes its text writes. What depends on the whole file is ``finish``'s, which
reads the rows in line order: the duplicate check (the first of equal conversations is kept), the
leaked-image rejection, the clean and rejects files and the report's statistics. A line that is
not a valid instruction is a rejection too, so one bad line never stops a long run.

Imported LLaVA / ShareGPT datasets (JSON arrays, too) are one unit, on the local engine only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from rsgpt4v.boxfmt import TextBox
from rsgpt4v.engines.stage import FanOut, Progress, Row, Unit, UnitOutputs, UnitRun
from rsgpt4v.engines.units import file_units, unit_lines
from rsgpt4v.errors import InputError
from rsgpt4v.report.stats import ReportStats
from rsgpt4v.schema import Instruction, Record, Source, count_lines
from rsgpt4v.validate.checks import (
    CheckSettings,
    Findings,
    Rejection,
    check_regions,
    check_structure,
    check_text,
)
from rsgpt4v.validate.importer import ImportedItem, read_conversations
from rsgpt4v.validate.leakage import Leak
from rsgpt4v.validate.outputs import RejectsWriter, ValidationSummary, maybe_writer
from rsgpt4v.validate.records import RecordTable
from rsgpt4v.validate.settings import ValidationOptions
from rsgpt4v.validate.tables import record_table
from rsgpt4v.validate.text_boxes import BoxMatch

#: Instructions per unit on a cluster: checks take well under a millisecond each.
INSTRUCTIONS_PER_UNIT = 20000
_SPACES = re.compile(r"\s+")
#: (line, instruction, its record, rejections found while reading) of one input item.
Item = tuple[int | None, Instruction | None, Record | None, list[Rejection]]
#: An item's instruction, its record and what the checks found.
Parsed = tuple[Instruction | None, Record | None, Findings]


def refuse_imports_on_a_cluster(fmt: str, path: Path) -> None:
    """Imported datasets are read whole (a JSON array has no line ranges): local engine only."""
    if fmt != "instructions":
        raise InputError(
            f"--engine ray validates rsgpt4v instruction files; {fmt} input runs with "
            "--engine local",
            file=path,
        )


class _Handed:
    """What :meth:`CheckStage.run_unit` parsed and found for the row it yielded last.

    The local engine hands that very row to ``finish`` next, which takes the instruction, its
    record and findings from here instead of parsing them back from the row (parsing the
    instruction again is a sixth of the run's time); a row read back from a shard is another
    object, and is parsed.
    """

    def __init__(self) -> None:
        self._row: Row = None
        self._parsed: Parsed = (None, None, Findings())

    def keep(self, row: Row, parsed: Parsed) -> None:
        self._row, self._parsed = row, parsed

    def parsed(self, row: Row, table: RecordTable, instructions: Path) -> Parsed:
        if row is self._row:
            return self._parsed
        findings = Findings([Rejection(*rejection) for rejection in row["rejections"]])
        if "instruction" not in row:
            return None, None, findings
        findings.text_boxes = [
            _box_match(box, instructions, row["line"]) for box in row.get("boxes", ())
        ]
        instruction = Instruction.model_validate_json(row["instruction"])
        record = table.find(row["record"], None) if row["record"] else None
        return instruction, record, findings


@dataclass(frozen=True)
class CheckStage:
    """Every item of ``instructions`` (read as ``fmt``) checked against ``records``.

    ``output``: the clean file (None: nothing kept; the rejects go beside the instructions);
    ``leaks``: the leakage pass's finding (None: not checked); ``report_dir``: where the report
    goes (None: no report).
    """

    instructions: Path
    records: Path
    output: Path | None
    fmt: str
    options: ValidationOptions = field(default_factory=ValidationOptions)
    leaks: dict[str, Leak] | None = None
    report_dir: Path | None = None
    lines_per_unit: int = INSTRUCTIONS_PER_UNIT
    _handed: _Handed = field(default_factory=_Handed, init=False, repr=False, compare=False)
    description = "validate"

    @property
    def shards_beside(self) -> Path:
        return self.output or self.instructions

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        if fan_out is not None:
            refuse_imports_on_a_cluster(self.fmt, self.instructions)
        records = str(self.records if fan_out is None else self.records.resolve())
        units = file_units(self.instructions, fan_out, self.lines_per_unit)
        return [unit | {"records": records} for unit in units]

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        """One row per item: what :meth:`finish` needs of it, in plain JSON values."""
        table = record_table(unit["records"])
        settings = self.options.checks
        items: Iterable[Item] = self._items(unit, table)
        if progress is not None:
            lines = self.instructions.suffix == ".jsonl" or self.fmt == "instructions"
            items = progress(items, count_lines(self.instructions) if lines else None)
        for line, instruction, record, early in items:
            if instruction is None:
                yield {"line": line, "rejections": [_rejection_row(r) for r in early]}
                continue
            findings = check_instruction(instruction, record, table, settings)
            row = {
                "line": line,
                "id": instruction.id,
                "record": record.id if record is not None else None,
                "key": conversation_key(instruction).hex(),
                "instruction": instruction.model_dump_json(exclude_none=False),
                "rejections": [_rejection_row(r) for r in findings.rejections],
            }
            if findings.text_boxes:  # drawn by the report's viewer
                row["boxes"] = [_box_row(match) for match in findings.text_boxes]
            self._handed.keep(row, (instruction, record, findings))
            yield row
        return {}

    def finish(self, outputs: UnitOutputs) -> ValidationSummary:
        leaks = self.leaks or {}
        summary = ValidationSummary(
            format=self.fmt,
            output=self.output,
            iou=self.options.iou,
            leakage_checked=self.leaks is not None,
            leaked_records=len(leaks),
        )
        stats = ReportStats(samples=self.options.samples, seed=self.options.seed)
        table = record_table(self.records)
        duplicates: dict[str, str] = {}
        with maybe_writer(self.output) as clean, RejectsWriter(summary, self.instructions) as bad:
            for row in outputs.rows():
                instruction, record, findings = self._handed.parsed(row, table, self.instructions)
                if instruction is not None:
                    _whole_file_findings(row, findings, duplicates, leaks)
                summary.instructions += 1
                stats.add(instruction, record, findings)
                if findings.rejections:
                    bad.reject(findings.rejections, row["line"])
                    continue
                summary.kept += 1
                if clean is not None:
                    clean.write_lines([row["instruction"] + "\n"])
        summary.variety = stats.variety.summary()
        if self.report_dir is not None:
            from rsgpt4v.report.html import write_report

            summary.report = write_report(self.report_dir, stats, summary, self.options.image_root)
        return summary

    def _items(self, unit: Unit, table: RecordTable) -> Iterator[Item]:
        if self.fmt == "instructions":
            return _instruction_lines(unit, table)
        return _imported_items(Path(unit["path"]), self.fmt, table)


def check_instruction(
    instruction: Instruction, record: Record | None, table: RecordTable, settings: CheckSettings
) -> Findings:
    """Every check of one instruction that needs nothing but it and its record."""
    findings = Findings()
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
        check_text(instruction, record, table.vocabulary(record), settings, findings)
    return findings


def _whole_file_findings(
    row: Row, findings: Findings, duplicates: dict[str, str], leaks: dict[str, Leak]
) -> None:
    """What only the whole file tells of an instruction: an earlier duplicate, a leaked image."""
    identifier = row["id"]
    first = duplicates.setdefault(row["key"], identifier)
    if first != identifier:
        message = f"{identifier}: same image and conversation as {first}"
        findings.rejections.append(Rejection("duplicate", identifier, message, first))
    leak = leaks.get(row["record"]) if row["record"] is not None else None
    if leak is not None:
        findings.rejections.append(leak_rejection(identifier, leak))


def leak_rejection(identifier: str, leak: Leak) -> Rejection:
    """The rejection of an instruction whose record's image is also in another split."""
    how = "identical bytes" if leak.distance == 0 else f"phash distance {leak.distance}"
    message = (
        f"{identifier}: image of {leak.record_id} ({leak.split}) is also {leak.other_id} "
        f"({leak.other_split}), {how}"
    )
    return Rejection("leaked_image", identifier, message, leak.other_id)


def conversation_key(instruction: Instruction) -> bytes:
    """The image and the conversation, lower case with whitespace collapsed, as a digest."""
    text = "\x1e".join(
        m.role + "\x1f" + _SPACES.sub(" ", m.content.strip().lower()) for m in instruction.messages
    )
    return hashlib.blake2b(f"{instruction.image}\x1d{text}".encode(), digest_size=16).digest()


def schema_rejection(number: int, error: ValidationError) -> Rejection:
    """The rejection of line ``number``, which is not an instruction: its first schema error."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    entry = f"line {number}"
    return Rejection(
        "schema", entry, f"{entry}: not a valid instruction: {where}: {first['msg']}", where
    )


def _instruction_lines(unit: Unit, table: RecordTable) -> Iterator[Item]:
    for number, text in unit_lines(unit):  # a line that is not UTF-8: InputError naming it
        try:
            instruction = Instruction.model_validate_json(text)
        except ValidationError as error:
            yield number, None, None, [schema_rejection(number, error)]
            continue
        yield number, instruction, table.find(instruction.record_id, instruction.image), []


def _imported_items(path: Path, fmt: str, table: RecordTable) -> Iterable[Item]:
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


def _rejection_row(rejection: Rejection) -> list[str | None]:
    value = None if rejection.value is None else str(rejection.value)
    return [rejection.code, rejection.instruction, rejection.message, value]


def _box_row(match: BoxMatch) -> list:
    """A text box as plain JSON values: shards live on shared storage, which a worker or anyone
    with write access could alter, so nothing read back from them is unpickled."""
    box = match.box
    return [box.x1, box.y1, box.x2, box.y2, box.angle, match.style, match.object_id, match.iou]


def _box_match(row: list, file: Path, line: int) -> BoxMatch:
    """A text box back from its row (:func:`_box_row`); JSON keeps ints and floats apart, so the
    report gets the values the checks found."""
    try:
        x1, y1, x2, y2, angle, style, object_id, iou = row
    except (TypeError, ValueError):
        raise InputError(
            "the result shard of this line holds a malformed text box",
            file=file,
            line=line,
            value=row,
        ) from None
    return BoxMatch(TextBox(x1, y1, x2, y2, angle), style, object_id, iou)
