"""``convert --engine ray``: a converter's independent parts, one task each.

A converter is split when it can name parts of its dataset that convert independently and in
order: a class with ``work_units() -> list[str]`` and ``unit_records(unit) -> Iterator[Record]``
(the protocol :class:`SplitConverter`), or one that has an adapter in :data:`SPLITTERS`. Each
task builds the converter with the run's options and writes the records of its part; their
concatenation in unit order is the converter's own stream, so the output is the local engine's
file, rejects and warnings in the same order.

Every other converter, and any run with ``--captions`` (matching captions needs the whole
stream), runs whole in one task: correct for every registered converter, not faster.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Protocol, runtime_checkable

from rsgpt4v.convert import ConversionSummary, convert_dataset
from rsgpt4v.converters import Converter, get_converter
from rsgpt4v.problems import ProblemLog, rejects_path, write_rejects
from rsgpt4v.scale.merge import concatenate
from rsgpt4v.scale.session import Unit, ray_session, run_units
from rsgpt4v.scale.shards import as_given, remove_shards, shard_path, shards_folder, write_shard
from rsgpt4v.schema import Record

WHOLE = "(whole dataset)"


@runtime_checkable
class SplitConverter(Protocol):
    """A converter whose dataset splits into parts converted independently, in order."""

    def work_units(self) -> list[str]: ...

    def unit_records(self, unit: str) -> Iterator[Record]: ...


class DotaSplits:
    """DOTA family: one part per split folder (train, val, test), as ``records()`` walks them."""

    def __init__(self, converter: Converter) -> None:
        self.converter = converter

    def work_units(self) -> list[str]:
        return [split for split, _ in self.converter.split_folders()]  # type: ignore[attr-defined]

    def unit_records(self, unit: str) -> Iterator[Record]:
        converter = self.converter
        folder = dict(converter.split_folders())[unit]  # type: ignore[attr-defined]
        found = converter.find_labels(unit, folder)  # type: ignore[attr-defined]
        dataset = (
            converter.dataset_name(found, folder)  # type: ignore[attr-defined]
            if found
            else converter._unlabelled_dataset_name()  # type: ignore[attr-defined]
        )
        yield from converter._split_records(dataset, unit, folder, found)  # type: ignore[attr-defined]


def _dota_splits(converter: Converter) -> SplitConverter | None:
    from rsgpt4v.converters.dota import DotaConverter

    return DotaSplits(converter) if isinstance(converter, DotaConverter) else None


#: Adapters for converters that split without implementing :class:`SplitConverter` themselves.
SPLITTERS: tuple[Callable[[Converter], SplitConverter | None], ...] = (_dota_splits,)


def splitter_of(converter: Converter) -> SplitConverter | None:
    """The converter's way of splitting its dataset, or None (it runs whole)."""
    if isinstance(converter, SplitConverter):
        return converter
    for adapter in SPLITTERS:
        if (splitter := adapter(converter)) is not None:
            return splitter
    return None


@dataclasses.dataclass(frozen=True)
class _Job:
    name: str
    root: str
    split: str | None
    skip_bad: bool
    captions: str | None
    options: Mapping[str, str]
    folder: str

    def converter(self, log: ProblemLog) -> Converter:
        return get_converter(self.name)(self.root, split=self.split, log=log, options=self.options)


def _convert_unit(unit: Unit, *, job: _Job) -> dict:
    shard = shard_path(job.folder, unit["index"])
    if unit["part"] == WHOLE:
        summary = convert_dataset(
            job.name, job.root, shard, split=job.split, skip_bad=job.skip_bad,
            captions=job.captions, options=job.options,
        )  # fmt: skip
        rejects_path(shard).unlink(missing_ok=True)
        return _result(str(shard), summary)
    log = ProblemLog(skip_bad=job.skip_bad)
    splitter = splitter_of(job.converter(log))
    assert splitter is not None  # the driver found one for the same converter
    summary = ConversionSummary(output=shard)
    lines = []
    for record in splitter.unit_records(unit["part"]):
        lines.append(record.model_dump_json(exclude_none=False) + "\n")
        summary.records += 1
        summary.objects += len(record.objects)
        summary.unlabelled += not record.labelled
        summary.captions += len(record.captions)
        summary.categories.update(map(attrgetter("category"), record.objects))
    summary.rejects, summary.warnings, summary.counts = log.problems, log.warnings, log.counts
    return _result(write_shard(shard, lines), summary)


def _result(shard: str, summary: ConversionSummary) -> dict:
    return {
        "shard": shard,
        "records": summary.records,
        "objects": summary.objects,
        "unlabelled": summary.unlabelled,
        "captions": summary.captions,
        "categories": summary.categories,
        "counts": summary.counts,
        "rejects": [dataclasses.asdict(problem) for problem in summary.rejects],
        "warnings": [dataclasses.asdict(problem) for problem in summary.warnings],
    }


def convert_dataset_ray(
    name: str,
    root: str | Path,
    output: str | Path,
    *,
    split: str | None = None,
    skip_bad: bool = False,
    captions: str | Path | None = None,
    options: Mapping[str, str] | None = None,
    address: str | None = None,
    progress: object = None,
) -> ConversionSummary:
    """:func:`rsgpt4v.convert.convert_dataset` on Ray: the same records file.

    ``progress`` is unused: Ray Data shows its own progress bars on a terminal.
    """
    output = Path(output)
    job = _Job(
        name=name,
        root=str(Path(root).resolve()),
        split=split,
        skip_bad=skip_bad,
        captions=str(Path(captions).resolve()) if captions is not None else None,
        options=dict(options or {}),
        folder=str(shards_folder(output)),
    )
    splitter = splitter_of(job.converter(ProblemLog(skip_bad=True)))  # checks root and options
    parts = splitter.work_units() if splitter is not None and captions is None else [WHOLE]
    units = [{"index": index, "part": part} for index, part in enumerate(parts)]
    with ray_session(address):
        results = run_units(units, partial(_convert_unit, job=job))
    summary = ConversionSummary(output=output)
    concatenate([result["shard"] for result in results], output)
    for result in results:
        for name_ in ("records", "objects", "unlabelled", "captions"):
            setattr(summary, name_, getattr(summary, name_) + result[name_])
        summary.categories.update(Counter(result["categories"]))
        summary.counts.update(Counter(result["counts"]))
        summary.rejects += as_given(result["rejects"], job.root, root)
        summary.warnings += as_given(result["warnings"], job.root, root)
    summary.rejects_file = write_rejects(output, summary.rejects)
    remove_shards(job.folder)
    return summary
