"""The ``tile`` stage: large scenes → tile images plus one record per tile and a tile manifest.

A 20000-px scene is 1.2 GB of pixels, so a scene is never read whole: each thread of a small pool
takes a row of tiles and reads one window at a time through its own dataset handle (a capped GDAL
block cache serves the overlap between neighbouring windows) and writes it as a tile (GDAL
releases the GIL), so at most one window per thread is in memory. Meanwhile the calling thread
places the objects and builds the tile records. Window layout and object rules live in
:mod:`rsgpt4v.tile_windows`.

GeoTIFF scenes give GeoTIFF tiles with the source's creation profile (compression, interleave,
blocks) and their own georeferencing (the scene's transform moved to the window, as
``src.window_transform`` gives it); any other format gives lossless PNG tiles. Tile images
mirror the scene's folder under ``--tiles-dir``; tile records carry ``parent`` (the scene's record
id) and ``window``. The manifest (``OUT.manifest.jsonl``) lists tile id, scene id, source image,
tile image, window and transform, one line per tile.

Tile images are staged under new temporary names and renamed into place, with the records and
the manifest, only when the run succeeds: a rerun that fails or is killed leaves the previous
tiles whole and the previous tiles file true (meanwhile the disk holds both runs' tiles).
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pydantic import BaseModel
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from rsgpt4v.atomic import StagedFiles
from rsgpt4v.engines import run_stage
from rsgpt4v.engines.shards import as_given
from rsgpt4v.engines.stage import FanOut, Progress, Unit, UnitOutputs, UnitRun
from rsgpt4v.engines.units import file_units, unit_models
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.paths import ImageRoot
from rsgpt4v.problems import Problem, ProblemLog, write_rejects
from rsgpt4v.raster import check_complete, decode_errors
from rsgpt4v.schema import ImageInfo, JsonlWriter, Object, Record, count_lines
from rsgpt4v.tile_settings import TileSettings
from rsgpt4v.tile_windows import (
    SceneObjects,
    TileWindow,
    plan_windows,
    repeated_tiles,
)

#: GDAL block cache (global): holds the source blocks under a row of windows of a 3-band 8-bit
#: scene up to ~50000 px wide, so side-by-side windows decode shared blocks once, while keeping
#: peak memory far below 1 GB.
BLOCK_CACHE_MB = 256
PNG_DTYPES = ("uint8", "uint16")
_PROFILE_KEYS = ("compress", "predictor", "interleave", "photometric", "tiled", "zlevel")
_Tile = tuple[TileWindow, Path, Path]  # window, tile image, its staged file


class ManifestEntry(BaseModel):
    """One line of the tile manifest: where a tile came from and where it was written."""

    tile: str
    parent: str
    source_image: str
    image: str
    window: list[int]
    transform: list[float] | None


@dataclass
class TilingSummary:
    output: Path
    manifest: Path
    records: int = 0
    tiles: int = 0
    objects: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    rejects: list[Problem] = field(default_factory=list)
    rejects_file: Path | None = None


def manifest_path(output: str | Path) -> Path:
    """``tiles.jsonl`` → ``tiles.manifest.jsonl``, next to the tile records."""
    output = Path(output)
    return output.with_name(output.stem + ".manifest.jsonl")


@dataclass(frozen=True)
class TileStage:
    """Every scene of ``records`` cut into tiles under ``tiles_dir``; tile records to
    ``output``, the manifest beside it. Units are line ranges of the scene records."""

    records: Path
    output: Path
    tiles_dir: Path
    image_root: Path
    settings: TileSettings = field(default_factory=TileSettings)
    #: Scenes per unit on a cluster: a scene is seconds of work, so a few give every worker
    #: a share.
    scenes_per_unit: int = 4
    description = "tile"

    @property
    def shards_beside(self) -> Path:
        return self.output

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        ImageRoot(self.image_root)  # a folder, or an error naming it
        units = file_units(self.records, fan_out, self.scenes_per_unit)
        for unit in units:  # a task has one CPU on a cluster: one writer thread each
            unit["threads"] = 1 if fan_out is not None else self.settings.threads()
            resolve = Path.resolve if fan_out is not None else Path  # shared storage
            unit["image_root"] = str(resolve(self.image_root))
            unit["tiles_dir"] = str(resolve(self.tiles_dir))
        return units

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        log = ProblemLog(skip_bad=self.settings.skip_bad)
        scenes: Iterable[tuple[int, Record]] = unit_models(unit, Record)
        if progress is not None:
            scenes = progress(scenes, count_lines(self.records))
        source, image_root = Path(unit["path"]), Path(unit["image_root"])
        tiler = _SceneTiler(image_root, Path(unit["tiles_dir"]), self.settings, log, source)
        totals = Counter[str]()
        with (
            warnings.catch_warnings(),  # set here, once: the filters are global, not per thread
            rasterio.Env(GDAL_CACHEMAX=BLOCK_CACHE_MB),
            ThreadPoolExecutor(unit["threads"]) as pool,
            StagedFiles(sidecars=(".aux.xml",)) as staged,  # renamed before the files naming them
        ):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # PNG scenes and tiles
            tiler.pool, tiler.staged = pool, staged
            for _, record in scenes:
                totals["records"] += 1
                for tile, entry in tiler.tile(record):
                    yield [tile.model_dump_json(exclude_none=False), entry.model_dump_json()]
                    totals["tiles"] += 1
                    totals["objects"] += len(tile.objects)
        rejects = [dataclasses.asdict(problem) for problem in log.problems]
        return {"totals": totals, "counts": log.counts, "rejects": rejects} | unit

    def finish(self, outputs: UnitOutputs) -> TilingSummary:
        summary = TilingSummary(output=self.output, manifest=manifest_path(self.output))
        with JsonlWriter(self.output) as tiles, JsonlWriter(summary.manifest) as manifest:
            for tile, entry in outputs.rows():
                tiles.write_lines([tile + "\n"])
                manifest.write_lines([entry + "\n"])
        for counts in outputs.counts:
            summary.records += counts["totals"].get("records", 0)
            summary.tiles += counts["totals"].get("tiles", 0)
            summary.objects += counts["totals"].get("objects", 0)
            summary.counts.update(counts["counts"])
            rejects = as_given(counts["rejects"], counts["path"], self.records)
            rejects = as_given(
                [dataclasses.asdict(r) for r in rejects], counts["image_root"], self.image_root
            )
            summary.rejects += rejects
        summary.rejects_file = write_rejects(self.output, summary.rejects)
        return summary


def tile_records(
    records_path: str | Path,
    output: str | Path,
    *,
    tiles_dir: str | Path,
    image_root: str | Path,
    settings: TileSettings | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
) -> TilingSummary:
    """Tile every record's image; stream tile records to output and the manifest beside it."""
    settings = settings or TileSettings()
    if skip_bad:
        settings = settings.model_copy(update={"skip_bad": True})
    stage = TileStage(Path(records_path), Path(output), Path(tiles_dir), Path(image_root), settings)
    return run_stage(stage, engine, address, progress)


class _SceneTiler:
    """Tiles one scene at a time; a scene that fails halfway leaves no tiles and no records."""

    pool: ThreadPoolExecutor
    staged: StagedFiles

    def __init__(
        self,
        image_root: Path,
        tiles_dir: Path,
        settings: TileSettings,
        log: ProblemLog,
        source: Path,
    ) -> None:
        self.image_root, self.tiles_dir, self.settings = image_root, tiles_dir, settings
        self.log, self.source = log, source

    def tile(self, record: Record) -> list[tuple[Record, ManifestEntry]]:
        try:
            image = ImageRoot(self.image_root).existing(
                record.image.path, file=self.source, entry=record.id
            )
        except InputError as error:
            self.log.reject(error.reason, self.source, entry=record.id, value=error.value)
            return []
        if record.captions or record.qa or record.label:
            self.log.count("scene captions, QA and labels not carried to tiles")
        written: list[Path] = []
        try:
            return self._tile(record, image, written)
        except InputError as error:
            self.staged.discard(written)
            file = error.file or image
            self.log.reject(error.reason, file, value=error.value, entry=record.id)
            return []

    def _tile(
        self, record: Record, image: Path, written: list[Path]
    ) -> list[tuple[Record, ManifestEntry]]:
        settings = self.settings
        with _open(image) as source:
            if (source.width, source.height) != (record.image.width, record.image.height):
                raise InputError(
                    f"record says {record.image.width}x{record.image.height}, image is "
                    f"{source.width}x{source.height}",
                    file=self.source,
                    value=record.image.path,
                )
            writer = TileWriter(source)
            windows = plan_windows(
                source.width, source.height, settings.size, settings.gap, settings.mode
            )
        scene = Path(record.image.path)
        names = [
            (scene.parent / f"{scene.stem}{w.suffix}{writer.suffix}").as_posix() for w in windows
        ]
        written.extend(self.tiles_dir / name for name in names)
        tiles = [
            (window, path, self.staged.stage(path))
            for window, path in zip(windows, written, strict=True)
        ]
        jobs = [
            self.pool.submit(_write_tiles, image, band, writer)
            for band in _row_bands(tiles, settings.threads())
        ]
        try:  # the objects are placed while the threads move the pixels
            objects = SceneObjects(record.objects)
            results = []
            for window, name in zip(windows, names, strict=True):
                kept = objects.in_window(window, settings.mode, settings.iof)
                results.append(self._tile_record(record, window, name, kept, writer))
            for job in jobs:
                job.result()
            self._mark_overlaps(results, objects)
        finally:
            for job in jobs:
                job.cancel()
            wait(jobs)  # no write may outlive the scene (a failed scene is cleaned up)
        self.log.counts.update(objects.counts)
        if objects.unplaced():
            self.log.count("objects in no tile", objects.unplaced())
        return results

    def _mark_overlaps(
        self, results: list[tuple[Record, ManifestEntry]], objects: SceneObjects
    ) -> None:
        """Each tile's cut objects (``meta.cut_objects``) and the tile it repeats, if any
        (``meta.repeats``, :func:`rsgpt4v.tile_windows.repeated_tiles`): scene-level questions
        are asked once per set of objects, not once per overlapping tile."""
        repeats = repeated_tiles(objects.whole)
        for (tile, _), cut, repeat in zip(results, objects.cut, repeats, strict=True):
            if cut:
                tile.meta["cut_objects"] = cut
            if repeat is not None:
                tile.meta["repeats"] = results[repeat][0].id
                self.log.count("tiles repeating another tile's whole objects (asked about once)")

    def _tile_record(
        self,
        record: Record,
        window: TileWindow,
        relative: str,
        kept: list[Object],
        writer: TileWriter,
    ) -> tuple[Record, ManifestEntry]:
        affine = writer.transform(window)
        transform = list(affine.to_gdal()) if affine is not None else None
        tile_id = f"{record.id}{window.suffix}"
        tile = Record(
            id=tile_id,
            dataset=record.dataset,
            split=record.split,
            image=ImageInfo(
                path=relative,
                width=window.width,
                height=window.height,
                bands=writer.bands,
                gsd=record.image.gsd,
                crs=(record.image.crs or writer.crs) if transform else None,
                transform=transform,
                parent=record.id,
                window=window.bounds,
            ),
            objects=kept,
            meta=dict(record.meta),
        )
        entry = ManifestEntry(
            tile=tile_id,
            parent=record.id,
            source_image=record.image.path,
            image=relative,
            window=window.bounds,
            transform=transform,
        )
        return tile, entry


class TileWriter:
    """Writes tiles of one scene: GeoTIFF with the scene's profile, or PNG for other formats."""

    def __init__(self, source: rasterio.DatasetReader) -> None:
        self.bands = source.count
        self.georeferenced = source.crs is not None and not source.transform.is_identity
        self.crs = source.crs.to_string() if self.georeferenced else None
        self._scene_transform = source.transform
        png_fits = source.count <= 4 and all(d in PNG_DTYPES for d in source.dtypes)
        self.geotiff = source.driver == "GTiff" or not png_fits
        self.suffix = ".tif" if self.geotiff else ".png"
        profile = {"count": source.count, "dtype": source.dtypes[0], "nodata": source.nodata}
        if self.geotiff:
            profile |= {k: v for k, v in source.profile.items() if k in _PROFILE_KEYS}
            if source.profile.get("tiled"):
                profile |= {
                    "blockxsize": source.profile["blockxsize"],
                    "blockysize": source.profile["blockysize"],
                }
            if self.georeferenced:
                profile["crs"] = source.crs
        self.profile = {"driver": "GTiff" if self.geotiff else "PNG", **profile}
        # which band is red, green or blue (a BGRN scene's tags) and the palette: tiles are shown
        # as the scene is (a PNG tile's bands are grey, grey + alpha, RGB or RGBA by their count)
        self.colorinterp = source.colorinterp if self.geotiff else None
        palette = source.count == 1 and source.colorinterp[0] == ColorInterp.palette
        self.colormap = source.colormap(1) if palette else None

    def transform(self, window: TileWindow) -> Affine | None:
        """The tile's own georeferencing: the scene's transform moved to the window's corner."""
        if not self.georeferenced:
            return None
        return self._scene_transform @ Affine.translation(window.x, window.y)

    def write(self, path: Path, data: np.ndarray, window: TileWindow, staged: Path) -> None:
        """The tile at path, written to its staged file (renamed at the end of the run)."""
        profile = {**self.profile, "width": window.width, "height": window.height}
        if self.geotiff and self.georeferenced:
            profile["transform"] = self.transform(window)
        try:
            with rasterio.open(staged, "w", **profile) as tile:
                tile.write(data)
                if self.colorinterp is not None:
                    tile.colorinterp = self.colorinterp
                if self.colormap is not None:
                    tile.write_colormap(1, self.colormap)
        except RasterioIOError as error:
            raise RsgptError(f"cannot write tile {path}: {error}") from None


def _rasterio_window(window: TileWindow) -> Window:
    return Window(window.x, window.y, window.width, window.height)


def _open(image: Path) -> rasterio.DatasetReader:
    """The scene, refused when its file holds less than its header says (:func:`check_complete`).

    GDAL reads the missing rows of a cut PNG as zeros without an error: a scene no bigger than
    one tile would otherwise become one black tile.
    """
    try:
        source = rasterio.open(image)
    except RasterioIOError as error:
        raise InputError(f"cannot read image: {error}", file=image) from None
    try:
        check_complete(source, image)
    except BaseException:
        source.close()
        raise
    return source


def _row_bands(tiles: list[_Tile], parts: int) -> list[list[_Tile]]:
    """Whole rows of tiles split into at most ``parts`` contiguous bands, one per thread.

    Contiguous rows keep one dataset handle on the blocks that vertically overlapping windows
    share (each handle has its own entries in GDAL's block cache).
    """
    rows = [list(row) for _, row in itertools.groupby(tiles, key=lambda tile: tile[0].y)]
    bounds = np.linspace(0, len(rows), min(parts, len(rows)) + 1).round().astype(int)
    return [list(itertools.chain(*rows[a:b])) for a, b in itertools.pairwise(bounds)]


def _write_tiles(image: Path, tiles: list[_Tile], writer: TileWriter) -> None:
    """A band of tiles, read one window at a time through this thread's own dataset handle.

    A thread per band of rows, rather than one reader feeding writers, keeps the threads busy
    without hand-offs, which matters on a machine whose cores are shared.
    """
    with _open(image) as source:
        for window, path, staged in tiles:
            writer.write(path, _read(source, window, image), window, staged)


def _read(source: rasterio.DatasetReader, window: TileWindow, image: Path) -> np.ndarray:
    """One window of every band; a corrupt block surfaces here, not at open."""
    try:
        with decode_errors(image):
            return source.read(window=_rasterio_window(window))
    except InputError as error:
        raise InputError(f"window {window.bounds}: {error.reason}", file=image) from None
