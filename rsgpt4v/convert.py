"""The ``convert`` stage: a legacy dataset → records.jsonl, plus a rejects file for bad items.

On the local engine the converter's whole stream is one unit. On a cluster, a converter that
names parts of its dataset converting independently and in order (:class:`SplitConverter`,
e.g. DOTA's split folders) is one unit per part; their concatenation in unit order is the
converter's own stream, so the records, rejects and warnings are the local run's. Any other
converter, and any run with ``--captions`` (matching captions needs the whole stream), is one
unit: correct for every registered converter, not faster.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Protocol, runtime_checkable

from rsgpt4v.convert_settings import ConvertSettings
from rsgpt4v.converters import Converter, get_converter
from rsgpt4v.engines import run_stage
from rsgpt4v.engines.shards import as_given
from rsgpt4v.engines.stage import Counts, FanOut, Progress, Unit, UnitOutputs, UnitRun
from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.problems import Problem, ProblemLog, write_rejects
from rsgpt4v.schema import JsonlWriter, Record, json_line

WHOLE = "(whole dataset)"


@dataclass
class ConversionSummary:
    output: Path
    records: int = 0
    objects: int = 0
    unlabelled: int = 0
    captions: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    rejects: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    rejects_file: Path | None = None


@runtime_checkable
class SplitConverter(Protocol):
    """A converter whose dataset splits into parts converted independently, in order."""

    def work_units(self) -> list[str]: ...

    def unit_records(self, unit: str) -> Iterator[Record]: ...


def load_captions(path: str | Path) -> dict[str, list[str]]:
    """Read a captions file: a JSON object mapping an image path (or file stem) to captions."""
    path = Path(path)
    data = load_json(path, what="captions file")
    if not isinstance(data, dict):
        raise InputError("expected an object mapping image paths to caption lists", file=path)
    for key, captions in data.items():
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise InputError(
                "captions must be a list of strings", file=path, entry=key, value=captions
            )
    return data


def _attach_captions(
    records: Iterable[Record], captions: Mapping[str, list[str]], source: Path, log: ProblemLog
) -> Iterator[Record]:
    """Add captions by image path, else by file stem; report entries that matched no image."""
    unused = set(captions)
    for record in records:
        stem = Path(record.image.path).stem
        key = record.image.path if record.image.path in captions else stem
        if key in captions:
            unused.discard(key)
            record.captions = list(dict.fromkeys(record.captions + captions[key]))
        yield record
    for key in sorted(unused):
        log.warn(f"captions entry {key!r} matches no converted image", source)


@dataclass(frozen=True)
class ConvertStage:
    """The dataset at ``root``, converted by the converter registered as ``dataset``."""

    dataset: str
    root: Path
    output: Path
    settings: ConvertSettings = field(default_factory=ConvertSettings)

    @property
    def description(self) -> str:
        return f"convert {self.dataset}"

    @property
    def shards_beside(self) -> Path:
        return self.output

    def converter(self, root: str | Path, log: ProblemLog) -> Converter:
        settings = self.settings
        converter = get_converter(self.dataset)
        return converter(root, split=settings.split, log=log, options=settings.converter_options())

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        converter = self.converter(self.root, ProblemLog(skip_bad=True))  # root and options
        if fan_out is None:
            return [{"part": WHOLE, "root": str(self.root)}]
        whole = not isinstance(converter, SplitConverter) or self.settings.captions is not None
        parts = [WHOLE] if whole else converter.work_units()  # type: ignore[union-attr]
        root = str(self.root.resolve())  # workers on other nodes see it on shared storage
        return [{"part": part, "root": root} for part in parts]

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        settings = self.settings
        log = ProblemLog(skip_bad=settings.skip_bad)
        converter = self.converter(unit["root"], log)
        records: Iterable[Record]
        if unit["part"] == WHOLE:
            records = converter.records()
            if settings.captions is not None:
                captions = load_captions(settings.captions)
                records = _attach_captions(records, captions, settings.captions, log)
            if progress is not None:
                records = progress(records, converter.estimate_count())
        else:
            records = converter.unit_records(unit["part"])  # type: ignore[attr-defined]
        counts = Counter[str]()
        categories = Counter[str]()
        for record in records:
            yield json_line(record)
            counts["records"] += 1
            counts["objects"] += len(record.objects)
            counts["unlabelled"] += not record.labelled
            counts["captions"] += len(record.captions)
            categories.update(map(attrgetter("category"), record.objects))
        return {
            "root": unit["root"],
            "totals": counts,
            "categories": categories,
            "counts": log.counts,
            "rejects": [dataclasses.asdict(problem) for problem in log.problems],
            "warnings": [dataclasses.asdict(problem) for problem in log.warnings],
        }

    def finish(self, outputs: UnitOutputs) -> ConversionSummary:
        summary = ConversionSummary(output=self.output)
        with JsonlWriter(self.output) as writer:
            for row in outputs.rows():  # one at a time: a record's line can be megabytes
                writer.write_line(row)
        for counts in outputs.counts:
            self._add(summary, counts)
        summary.rejects_file = write_rejects(self.output, summary.rejects)
        return summary

    def _add(self, summary: ConversionSummary, counts: Counts) -> None:
        for name, value in counts["totals"].items():
            setattr(summary, name, getattr(summary, name) + value)
        summary.categories.update(counts["categories"])
        summary.counts.update(counts["counts"])
        summary.rejects += as_given(counts["rejects"], counts["root"], self.root)
        summary.warnings += as_given(counts["warnings"], counts["root"], self.root)


def convert_dataset(
    name: str,
    root: str | Path,
    output: str | Path,
    *,
    split: str | None = None,
    skip_bad: bool = False,
    captions: str | Path | None = None,
    options: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
) -> ConversionSummary:
    """Convert the dataset at root with the converter registered as name; stream to output."""
    settings = ConvertSettings(
        split=split,
        skip_bad=skip_bad,
        captions=Path(captions) if captions is not None else None,
        options=dict(options or {}),
    )
    stage = ConvertStage(name, Path(root), Path(output), settings)
    return run_stage(stage, engine, address, progress)
