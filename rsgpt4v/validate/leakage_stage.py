"""The leakage pass of ``validate``: every record's image fingerprinted, then the pairs found.

The pixels are the cost, so the units are groups of images: the whole records file on the local
engine (read by a few threads, under one progress bar), ``images_per_unit`` images per unit on a
cluster (one thread each: the units fan out). Each unit's rows are its images' fingerprints, in
record order; ``finish`` pairs them (:func:`~rsgpt4v.validate.leakage.find_leaks`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.engines.stage import FanOut, Progress, Unit, UnitOutputs, UnitRun
from rsgpt4v.errors import InputError
from rsgpt4v.paths import under_root
from rsgpt4v.problems import LineNumbers, at_line
from rsgpt4v.validate.leakage import (
    DEFAULT_MAX_DISTANCE,
    FINGERPRINT_WORKERS,
    ImageEntry,
    Leak,
    find_leaks,
    fingerprint_records,
)
from rsgpt4v.validate.tables import record_table

#: Images fingerprinted per unit on a cluster (a read and a hash each, milliseconds to a second).
IMAGES_PER_UNIT = 200


@dataclass(frozen=True)
class LeakageStage:
    """The records of ``records`` whose image also appears in another split, by record id.

    ``image_root``: the folder the records' image paths are relative to; ``beside``: the file
    beside which a cluster run keeps its shards.
    """

    records: Path
    image_root: Path
    beside: Path
    max_distance: int = DEFAULT_MAX_DISTANCE
    images_per_unit: int = IMAGES_PER_UNIT
    description = "fingerprint images"

    @property
    def shards_beside(self) -> Path:
        return self.beside

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        """The images of every record (an escaping path is an error naming its record)."""
        local = fan_out is None
        records = str(self.records if local else self.records.resolve())
        root = self.image_root if local else self.image_root.resolve()  # seen from every node
        images = []
        for index, (record_id, split, image) in enumerate(record_table(records).places()):
            try:
                path = under_root(root, image, entry=record_id)
            except InputError as error:
                raise self._at_record(error, records, index, record_id) from None
            images.append([record_id, split, str(path)])
        size = max(len(images), 1) if local else self.images_per_unit
        return [
            {
                "records": records,
                "first": first,
                "images": images[first : first + size],
                "threads": FINGERPRINT_WORKERS if local else 1,
            }
            for first in range(0, len(images), size)
        ]

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        """The fingerprints of the unit's images: ``[record id, split, sha256, phash]`` rows."""
        items = [(record_id, split, Path(path)) for record_id, split, path in unit["images"]]
        try:
            entries = fingerprint_records(items, progress, workers=unit["threads"])
        except InputError as error:  # names the image file: say which record it is
            at = next((n for n, item in enumerate(items) if str(item[2]) == error.file), None)
            if at is None:
                raise
            raise self._at_record(
                error, unit["records"], unit["first"] + at, items[at][0]
            ) from None
        for entry in entries:
            yield list(dataclasses.astuple(entry))
        return {}

    def finish(self, outputs: UnitOutputs) -> dict[str, Leak]:
        entries = (ImageEntry(*row) for row in outputs.rows())
        return find_leaks(entries, self.max_distance)

    def _at_record(self, error: InputError, records: str, index: int, record_id: str) -> InputError:
        """The error at the line of record ``index``: an image path does not say which record."""
        with LineNumbers(records) as lines:
            return at_line(error, self.records, lines(index), record_id)
