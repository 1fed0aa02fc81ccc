"""The ``convert`` stage: a legacy dataset → records.jsonl, plus a rejects file for bad items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

from rsgpt4v.collector import older_objects_frozen
from rsgpt4v.converters import get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.problems import Problem, ProblemLog, write_rejects
from rsgpt4v.schema import JsonlWriter, Record


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


def convert_dataset(
    name: str,
    root: str | Path,
    output: str | Path,
    *,
    split: str | None = None,
    skip_bad: bool = False,
    captions: str | Path | None = None,
    options: Mapping[str, str] | None = None,
    progress: Callable[[Iterable[Record], int | None], Iterable[Record]] | None = None,
) -> ConversionSummary:
    """Convert the dataset at root with the converter registered as name; stream to output."""
    output = Path(output)
    log = ProblemLog(skip_bad=skip_bad)
    converter = get_converter(name)(root, split=split, log=log, options=options)
    records: Iterable[Record] = converter.records()
    if captions is not None:
        records = _attach_captions(records, load_captions(captions), Path(captions), log)
    if progress is not None:
        records = progress(records, converter.estimate_count())
    summary = ConversionSummary(output=output)
    with older_objects_frozen(), JsonlWriter(output) as writer:
        for record in records:
            writer.write(record)
            summary.records += 1
            summary.objects += len(record.objects)
            summary.unlabelled += not record.labelled
            summary.captions += len(record.captions)
            summary.categories.update(map(attrgetter("category"), record.objects))
    summary.rejects, summary.warnings, summary.counts = log.problems, log.warnings, log.counts
    summary.rejects_file = write_rejects(output, log.problems)
    return summary
