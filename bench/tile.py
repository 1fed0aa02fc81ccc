"""Benchmark ``rsgpt4v tile`` on a large GeoTIFF against a read-it-all-then-slice baseline.

    python bench/tile.py                    # 20000 x 20000 x 3 uint8 (1.2 GB of pixels)
    python bench/tile.py --size 6000        # quicker

The scene is written block row by block row (never whole in memory): 512 x 512 tiles, no
compression, so generating it costs one sequential write and both tilers pay the same for
decoding. It holds 2000 labelled objects so the per-window object work is part of the cost.

Both tilers lay out the same windows, assign objects with the same code and write the same tile
files through :class:`rsgpt4v.tiling.TileWriter`; they differ only in how pixels are read:

- ours: :func:`rsgpt4v.tiling.tile_records` (one window read at a time, tiles written by a
  thread pool);
- baseline: ``src.read()`` of the whole scene, then numpy slices, written one after another
  (with the same capped GDAL block cache, so its peak memory is the scene, not scene + cache).

Each runs in a fresh subprocess that reports its wall time and its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``; RUSAGE_CHILDREN would be the maximum over every child
waited for so far, mixing the two runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

BLOCK = 512
OBJECTS = 2000


def make_scene(folder: Path, size: int) -> Path:
    """A 3-band uint8 GeoTIFF (UTM 33N, 0.5 m) and its one-line records file."""
    image = folder / "scene.tif"
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 4650000, 0.5, 0.5),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "interleave": "pixel",
    }
    columns = np.arange(size, dtype=np.uint32)
    with rasterio.open(image, "w", **profile) as scene:
        for top in range(0, size, BLOCK):
            rows = np.arange(top, min(top + BLOCK, size), dtype=np.uint32)[:, None]
            pixels = np.stack([(columns * (b + 1) + rows * 3 + b * 85) % 251 for b in range(3)])
            scene.write(pixels.astype(np.uint8), window=Window(0, top, size, len(rows)))
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, size - 40, (OBJECTS, 2))
    objects = [
        {
            "id": i,
            "category": "small-vehicle",
            "bbox": [float(x), float(y), 30.0, 14.0],
            "polygon": [[x, y], [x + 30, y], [x + 30, y + 14], [x, y + 14]],
        }
        for i, (x, y) in enumerate(corners.tolist())
    ]
    record = {
        "id": "bench/all/scene",
        "dataset": "bench",
        "split": "all",
        "image": {"path": "scene.tif", "width": size, "height": size, "bands": 3},
        "objects": objects,
    }
    (folder / "records.jsonl").write_text(json.dumps(record) + "\n")
    return image


def run_ours(folder: Path, tile: int, gap: int, workers: int) -> int:
    from rsgpt4v.tiling import TileSettings, tile_records

    summary = tile_records(
        folder / "records.jsonl",
        folder / "out" / "tiles.jsonl",
        tiles_dir=folder / "out" / "tiles",
        image_root=folder,
        settings=TileSettings(size=tile, gap=gap, workers=workers),
    )
    return summary.tiles


def run_baseline(folder: Path, tile: int, gap: int) -> int:
    from rsgpt4v.schema import Record, read_jsonl
    from rsgpt4v.tile_windows import SceneObjects, plan_windows
    from rsgpt4v.tiling import BLOCK_CACHE_MB, TileWriter

    (record,) = read_jsonl(folder / "records.jsonl", Record)
    out = folder / "out" / "tiles"
    out.mkdir(parents=True)
    count = 0
    with (
        rasterio.Env(GDAL_CACHEMAX=BLOCK_CACHE_MB),  # the same block cache as ours
        rasterio.open(folder / record.image.path) as source,
    ):
        pixels = source.read()
        writer = TileWriter(source)
        objects = SceneObjects(record.objects)
        for window in plan_windows(source.width, source.height, tile, gap, "devkit"):
            data = pixels[
                :, window.y : window.y + window.height, window.x : window.x + window.width
            ]
            path = out / f"scene{window.suffix}.tif"
            writer.write(path, data, window, path)  # written in place: no staging
            objects.in_window(window, "devkit", 0.7)
            count += 1
    return count


def child(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    start = time.perf_counter()
    if args.child == "ours":
        tiles = run_ours(folder, args.tile, args.gap, args.workers)
    else:
        tiles = run_baseline(folder, args.tile, args.gap)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    peak_mib = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    print(json.dumps({"tiles": tiles, "seconds": seconds, "cpu": cpu, "peak_mib": peak_mib}))


def measure(name: str, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """One run in a fresh process, after the last run's tiles are deleted and flushed to disk."""
    shutil.rmtree(folder / "out", ignore_errors=True)
    os.sync()  # else the previous run's 2 GB of dirty pages are written back during this one
    command = [sys.executable, __file__, "--child", name, "--folder", str(folder)]
    command += ["--tile", str(args.tile), "--gap", str(args.gap), "--workers", str(args.workers)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20000, help="scene width and height (px)")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--gap", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0, help="our writer threads (0: auto)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best is kept")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    folder = Path(args.dir or tempfile.mkdtemp(prefix="rsgpt4v-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_scene(folder, args.size)
    print(f"scene {args.size}x{args.size}x3 uint8 written in {time.perf_counter() - start:.1f} s")
    print(f"tiles {args.tile} px, gap {args.gap}; machine: {os.cpu_count()} CPUs")
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "ours": []}
    try:
        for _ in range(args.repeat):
            for name, results in runs.items():
                results.append(measure(name, folder, args))
                report(name, results[-1])
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    baseline, ours = (min(runs[name], key=lambda r: r["seconds"]) for name in ("baseline", "ours"))
    print(f"best of {args.repeat}:")
    report("baseline", baseline)
    report("ours", ours)
    speed = baseline["seconds"] / ours["seconds"]
    memory = ours["peak_mib"] / baseline["peak_mib"]
    print(f"speed: {speed:.2f}x the baseline; peak memory: {memory:.2f}x the baseline's")


def report(name: str, result: dict[str, float]) -> None:
    label = {"baseline": "baseline (read all, slice)", "ours": "ours (windowed)"}[name]
    print(
        f"  {label:28s} {result['tiles']:5.0f} tiles  {result['seconds']:7.2f} s wall  "
        f"{result['cpu']:7.2f} s CPU  peak RSS {result['peak_mib']:6.0f} MiB",
        flush=True,
    )


if __name__ == "__main__":
    main()
