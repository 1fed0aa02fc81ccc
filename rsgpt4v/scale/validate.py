"""``validate --engine ray``: the checks of every instruction, and the images' fingerprints,
computed on the cluster.

Each task checks a line range of the instructions file against the records (one record table
per worker process, kept for its later tasks) with the local engine's checker, and writes one
result row per line, as JSON (never pickle: the shards are on shared storage): the instruction as
the clean file holds it, its rejections, the text boxes it writes and the digest of its
conversation. What depends on the order of the whole file stays with the driver, which
reads the result shards in line order: the duplicate check (the first of equal conversations is
kept), the clean and rejects files and the report statistics. The leakage pass fingerprints the
images on the workers and pairs them on the driver. The output is therefore the local engine's,
line for line. Rsgpt4v instruction files only: LLaVA / ShareGPT imports run locally.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from rsgpt4v.boxfmt import TextBox
from rsgpt4v.errors import InputError
from rsgpt4v.paths import ImageRoot, under_root
from rsgpt4v.report.stats import ReportStats
from rsgpt4v.scale.session import Unit, ray_session, run_units
from rsgpt4v.scale.shards import remove_shards, shard_path, shards_folder, write_shard
from rsgpt4v.scale.units import line_units, unit_lines
from rsgpt4v.schema import Instruction
from rsgpt4v.validate.checks import Findings, Rejection
from rsgpt4v.validate.importer import detect_format
from rsgpt4v.validate.leakage import ImageEntry, Leak, find_leaks, fingerprint_records
from rsgpt4v.validate.records import RecordTable
from rsgpt4v.validate.run import (
    Checker,
    RejectsWriter,
    ValidationOptions,
    ValidationSummary,
    conversation_key,
    maybe_writer,
    schema_rejection,
)
from rsgpt4v.validate.text_boxes import BoxMatch

#: Instructions per task: checks take well under a millisecond each.
DEFAULT_INSTRUCTIONS_PER_UNIT = 20000
#: Images fingerprinted per task (a read and a hash each, milliseconds to a second).
IMAGES_PER_UNIT = 200
_tables: dict[tuple[str, float, int], RecordTable] = {}


class _NoDuplicates(dict):
    """A checker memory that never remembers: the driver finds duplicates over the whole file."""

    def setdefault(self, key, default=None):  # type: ignore[override]
        return default


def _table(path: str) -> RecordTable:
    """The worker's record table of this records file (built once per worker process)."""
    stat = Path(path).stat()
    key = (path, stat.st_mtime, stat.st_size)
    if key not in _tables:
        for table in _tables.values():
            table.close()
        _tables.clear()
        _tables[key] = RecordTable(path)
    return _tables[key]


def _check_unit(
    unit: Unit, *, records: str, options: ValidationOptions, leaks: dict[str, Leak], folder: str
) -> dict:
    table = _table(records)
    checker = Checker(table, options, leaks)
    checker.duplicates = _NoDuplicates()
    rows = []
    for number, text in unit_lines(unit):
        try:
            instruction = Instruction.model_validate_json(text)
        except ValidationError as error:
            rejection = schema_rejection(number, error)
            rows.append({"line": number, "rejections": [list(dataclasses.astuple(rejection))]})
            continue
        record = table.find(instruction.record_id, instruction.image)
        findings = Findings()
        checker.check(instruction, record, findings)
        rows.append(
            {
                "line": number,
                "id": instruction.id,
                "key": conversation_key(instruction).hex(),
                "instruction": instruction.model_dump_json(),
                "rejections": [
                    [r.code, r.instruction, r.message, None if r.value is None else str(r.value)]
                    for r in findings.rejections
                ],
            }
        )
        if findings.text_boxes:  # drawn by the report's viewer
            rows[-1]["boxes"] = [_box_row(match) for match in findings.text_boxes]
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    return {"shard": write_shard(shard_path(folder, unit["index"]), lines)}


def _fingerprint_unit(unit: Unit) -> dict:
    items = [(record_id, split, Path(path)) for record_id, split, path in unit["images"]]
    entries = fingerprint_records(items, workers=1)  # one CPU per task: the tasks fan out
    return {"entries": [dataclasses.astuple(entry) for entry in entries]}


def _leaks_on_ray(table: RecordTable, options: ValidationOptions) -> dict[str, Leak]:
    """The leakage pass with the images fingerprinted by the workers (the pixels are the cost);
    the driver pairs the fingerprints, in record order as the local engine does."""
    root = (options.image_root or Path()).resolve()
    images = [
        [record_id, split, str(under_root(root, image, entry=record_id))]
        for record_id, split, image in table.places()
    ]
    units = [
        {"index": index, "images": images[start : start + IMAGES_PER_UNIT]}
        for index, start in enumerate(range(0, len(images), IMAGES_PER_UNIT))
    ]
    entries = [
        ImageEntry(*entry)
        for result in run_units(units, _fingerprint_unit)
        for entry in result["entries"]
    ]
    return find_leaks(entries, options.max_distance)


def validate_instructions_ray(
    instructions: str | Path,
    records: str | Path,
    output: str | Path | None = None,
    *,
    report_dir: str | Path | None = None,
    options: ValidationOptions | None = None,
    address: str | None = None,
    progress: object = None,
    unit_lines: int = DEFAULT_INSTRUCTIONS_PER_UNIT,
) -> ValidationSummary:
    """:func:`rsgpt4v.validate.run.validate_instructions` with its checks on Ray.

    ``progress`` is unused: Ray Data shows its own progress bars on a terminal.
    """
    options = options or ValidationOptions()
    instructions = Path(instructions)
    fmt = detect_format(instructions) if options.fmt == "auto" else options.fmt
    if fmt != "instructions":
        raise InputError(
            f"--engine ray validates rsgpt4v instruction files; {fmt} input runs with "
            "--engine local",
            file=instructions,
        )
    ImageRoot.of(options.image_root)  # a folder, or an error naming it
    summary = ValidationSummary(
        format=fmt, output=Path(output) if output else None, iou=options.checks.iou
    )
    stats = ReportStats(samples=options.samples, seed=options.seed)
    units = line_units(instructions, unit_lines)
    folder = shards_folder(summary.output or instructions)
    with RecordTable(records) as table, ray_session(address):
        leaks: dict[str, Leak] = {}
        if options.leakage and options.image_root is not None:
            leaks = _leaks_on_ray(table, options)
            summary.leakage_checked, summary.leaked_records = True, len(leaks)
        work = partial(
            _check_unit,
            records=str(Path(records).resolve()),
            options=options,
            leaks=leaks,
            folder=str(folder),
        )
        shards = [result["shard"] for result in run_units(units, work)]
        report = stats if report_dir is not None else None
        _write(shards, instructions, summary, table, report)
        if report is not None:  # the phrasing figures come from the report's pass
            summary.variety = stats.variety.summary()
    remove_shards(folder)
    if report_dir is not None:
        from rsgpt4v.report.html import write_report

        summary.report = write_report(report_dir, stats, summary, options.image_root)
    return summary


def _write(
    shards: list[str],
    instructions: Path,
    summary: ValidationSummary,
    table: RecordTable,
    stats: ReportStats | None,
) -> None:
    """The local engine's output from the result rows: duplicates, clean file, rejects, stats."""
    duplicates: dict[str, str] = {}
    with maybe_writer(summary.output) as clean, RejectsWriter(summary, instructions) as bad:
        for row in _rows(shards):
            findings = Findings([Rejection(*r) for r in row["rejections"]])
            if "boxes" in row:
                findings.text_boxes = [
                    _box_match(box, instructions, row["line"]) for box in row["boxes"]
                ]
            if "key" in row:
                _duplicate(row, duplicates, findings)
            summary.instructions += 1
            if stats is not None:
                _count(stats, table, row, findings)
            if findings.rejections:
                bad.reject(findings.rejections, row["line"])
            else:
                summary.kept += 1
                if clean is not None:
                    clean.write_lines([row["instruction"] + "\n"])


def _box_row(match: BoxMatch) -> list:
    """A text box as plain JSON values: shards live on shared storage, which a worker or anyone
    with write access could alter, so nothing read back from them is unpickled."""
    box = match.box
    return [box.x1, box.y1, box.x2, box.y2, box.angle, match.style, match.object_id, match.iou]


def _box_match(row: list, file: Path, line: int) -> BoxMatch:
    """A text box back from its JSON row (``_box_row``); JSON keeps ints and floats apart, so
    the report gets the local engine's values."""
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


def _rows(shards: list[str]) -> Iterator[dict]:
    for shard in shards:
        with open(shard, encoding="utf-8") as handle:
            yield from map(json.loads, handle)


def _count(stats: ReportStats, table: RecordTable, row: dict, findings: Findings) -> None:
    """The report's statistics of one row (the instruction parsed again, on the driver)."""
    if "instruction" not in row:
        stats.add(None, None, findings)
        return
    instruction = Instruction.model_validate_json(row["instruction"])
    stats.add(instruction, table.find(instruction.record_id, instruction.image), findings)


def _duplicate(row: dict, duplicates: dict[str, str], findings: Findings) -> None:
    """The local checker's duplicate rejection, in its place (before a leaked-image one)."""
    first = duplicates.setdefault(row["key"], row["id"])
    if first == row["id"]:
        return
    rejection = Rejection(
        "duplicate", row["id"], f"{row['id']}: same image and conversation as {first}", first
    )
    place = len(findings.rejections)
    if place and findings.rejections[-1].code == "leaked_image":
        place -= 1
    findings.rejections.insert(place, rejection)
