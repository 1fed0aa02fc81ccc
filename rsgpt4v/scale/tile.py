"""``tile --engine ray``: one task per line range of the scene records.

Each task writes its records to a scratch file and runs :func:`rsgpt4v.tiling.tile_records` on
it, the local engine itself: tile images go to ``--tiles-dir`` (shared storage on a cluster)
under names that depend only on the scene, tile records and manifest lines go to the task's
shards. Rejects and errors name the input file, not the scratch file.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections import Counter
from functools import partial
from pathlib import Path

from rsgpt4v.errors import InputError
from rsgpt4v.paths import ImageRoot
from rsgpt4v.problems import Problem, write_rejects
from rsgpt4v.scale.merge import concatenate
from rsgpt4v.scale.session import Unit, ray_session, run_units
from rsgpt4v.scale.shards import as_given, remove_shards, shard_path, shards_folder, write_shard
from rsgpt4v.scale.units import line_units, unit_lines
from rsgpt4v.tiling import TileSettings, TilingSummary, manifest_path, tile_records

#: Scenes per unit: a scene is seconds of work, so a few give every worker a share.
DEFAULT_SCENES_PER_UNIT = 4


def _tile_unit(
    unit: Unit,
    *,
    source: str,
    tiles_dir: str,
    image_root: str,
    settings: TileSettings,
    skip_bad: bool,
    folder: str,
) -> dict:
    pairs = list(unit_lines(unit))
    numbers = tuple(number for number, _ in pairs)
    with tempfile.TemporaryDirectory(prefix="rsgpt4v-tile-") as scratch:
        records = Path(scratch) / "records.jsonl"
        records.write_text("".join(text + "\n" for _, text in pairs), encoding="utf-8")
        out = Path(scratch) / "tiles.jsonl"
        try:
            summary = tile_records(
                records, out, tiles_dir=tiles_dir, image_root=image_root, settings=settings,
                skip_bad=skip_bad,
            )  # fmt: skip
        except InputError as error:
            raise _named(error, records, source, numbers) from None
        index = unit["index"]
        lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
        manifest = manifest_path(out).read_text(encoding="utf-8").splitlines(keepends=True)
    rejects = [
        dataclasses.asdict(_renamed(problem, records, source, numbers))
        for problem in summary.rejects
    ]
    return {
        "tiles": write_shard(shard_path(folder, index), lines),
        "manifest": write_shard(shard_path(folder, index, "manifest"), manifest),
        "records": summary.records,
        "objects": summary.objects,
        "counts": summary.counts,
        "rejects": rejects,
    }


def _named(error: InputError, scratch: Path, source: str, numbers: tuple[int, ...]) -> InputError:
    """The error as the local engine reports it: the input file and its line number."""
    if error.file != str(scratch):
        return error
    line = numbers[error.line - 1] if error.line else None
    return InputError(error.reason, file=source, line=line, entry=error.entry, value=error.value)


def _renamed(problem: Problem, scratch: Path, source: str, numbers: tuple[int, ...]) -> Problem:
    if problem.file != str(scratch):
        return problem
    line = numbers[problem.line - 1] if problem.line else None
    return dataclasses.replace(problem, file=source, line=line)


def tile_records_ray(
    records_path: str | Path,
    output: str | Path,
    *,
    tiles_dir: str | Path,
    image_root: str | Path,
    settings: TileSettings | None = None,
    skip_bad: bool = False,
    address: str | None = None,
    progress: object = None,
    unit_lines: int = DEFAULT_SCENES_PER_UNIT,
) -> TilingSummary:
    """:func:`rsgpt4v.tiling.tile_records` on Ray: the same tiles, records and manifest.

    ``progress`` is unused: Ray Data shows its own progress bars on a terminal.
    """
    settings = settings or TileSettings()
    if settings.workers == 0:  # one CPU per task: one writer thread each, the tasks fan out
        settings = dataclasses.replace(settings, workers=1)
    ImageRoot(Path(image_root))  # a folder, or an error naming it
    output = Path(output)
    units = line_units(records_path, unit_lines)
    folder = shards_folder(output)
    work = partial(
        _tile_unit,
        source=str(records_path),
        tiles_dir=str(Path(tiles_dir).resolve()),
        image_root=str(Path(image_root).resolve()),
        settings=settings,
        skip_bad=skip_bad,
        folder=str(folder),
    )
    with ray_session(address):
        results = run_units(units, work)
    summary = TilingSummary(output=output, manifest=manifest_path(output))
    summary.tiles = concatenate([result["tiles"] for result in results], output)
    concatenate([result["manifest"] for result in results], summary.manifest)
    counts: Counter[str] = Counter()
    for result in results:
        summary.records += result["records"]
        summary.objects += result["objects"]
        counts.update(result["counts"])
        summary.rejects += as_given(result["rejects"], work.keywords["image_root"], image_root)
    summary.counts = counts
    summary.rejects_file = write_rejects(output, summary.rejects)
    remove_shards(folder)
    return summary
