"""Benchmark: DOTA conversion speed and memory against a straightforward reference parse.

Generates a DOTA-layout set (devkit layout, CRLF labels with headers) with at least 200k objects,
then converts it in two child processes measured in the same run:

- ours: ``rsgpt4v.convert.convert_dataset("dota", …)`` — the real command path;
- reference: read each label file, build one shapely polygon per object, clip its bounds to the
  image (size read with PIL), write the same JSON lines with ``json.dumps``.

Prints objects/s and peak RSS of each and the ratios. Memory flatness: ours runs again on a set
with a quarter of the files, and the peak RSS of both sizes is printed. Where ours spends its time
comes from one more run with a few functions timed per call (the measured runs are not touched).

    python bench/convert.py [--objects 200000] [--per-file 250]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("plane", "ship", "small-vehicle", "large-vehicle", "storage-tank", "harbor")
IMAGE_SIZE = 1024
# Stages of ours timed per call in the breakdown run: (stage, module, function). The rest of the
# time ("other") walks the layout, checks paths, builds the records and frees them.
STAGES = (
    ("label parse", "rsgpt4v.converters.dota", "parse_dota_label"),
    ("image header", "rsgpt4v.converters.base", "describe_raster"),
    ("objects", "rsgpt4v.converters.dota", "DotaConverter._objects"),
    ("serialise", "rsgpt4v.convert", "json_line"),
)


def make_dataset(root: Path, files: int, per_file: int, seed: int = 0) -> int:
    """Write files label files of per_file objects each (and one blank 1024² PNG per file)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    blank = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE))
    for index in range(files):
        stem = f"P{index:05d}"
        blank.save(root / "images" / f"{stem}.png", compress_level=1)
        centres = rng.uniform(-20, IMAGE_SIZE + 20, (per_file, 2))
        sizes = rng.uniform(4, 60, (per_file, 2))
        lines = ["imagesource:GoogleEarth", "gsd:0.146343590398"]
        for (cx, cy), (w, h), k in zip(
            centres, sizes, rng.integers(0, len(CLASSES), per_file), strict=True
        ):
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            corners = f"{x1:.0f} {y1:.0f} {x2:.0f} {y1:.0f} {x2:.0f} {y2:.0f} {x1:.0f} {y2:.0f}"
            lines.append(f"{corners} {CLASSES[k]} {int(rng.random() < 0.1)}")
        (root / "labelTxt" / f"{stem}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return files * per_file


def run_ours(root: Path, output: Path) -> int:
    from rsgpt4v.convert import convert_dataset

    summary = convert_dataset("dota", root, output, skip_bad=True)
    return summary.objects


def run_reference(root: Path, output: Path) -> int:
    """The parse a peer script would write: one shapely polygon per object."""
    import shapely

    objects = 0
    with output.open("w") as out:
        for label in sorted((root / "labelTxt").glob("*.txt")):
            image = root / "images" / f"{label.stem}.png"
            with Image.open(image) as opened:
                width, height = opened.size
            items = []
            for line in label.read_text().splitlines():
                parts = line.strip().split(" ")
                if len(parts) < 9:
                    continue
                coords = [float(v) for v in parts[:8]]
                polygon = shapely.Polygon(list(zip(coords[0::2], coords[1::2], strict=True)))
                x1, y1, x2, y2 = polygon.bounds
                x1, y1 = max(x1, 0.0), max(y1, 0.0)
                x2, y2 = min(x2, width), min(y2, height)
                if x2 <= x1 or y2 <= y1:
                    continue
                items.append(
                    {
                        "id": len(items),
                        "category": parts[8],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "polygon": [list(p) for p in zip(coords[0::2], coords[1::2], strict=True)],
                        "difficult": parts[9] == "1",
                        "attributes": {},
                    }
                )
            objects += len(items)
            record = {
                "id": f"dota/all/{label.stem}",
                "dataset": "dota",
                "split": "all",
                "image": {"path": f"images/{image.name}", "width": width, "height": height},
                "objects": items,
            }
            out.write(json.dumps(record) + "\n")
    return objects


def run_ours_by_stage(root: Path, output: Path) -> dict[str, float]:
    """Seconds spent in each of STAGES, and in all, during one run of ours."""
    spent = dict.fromkeys([stage for stage, _, _ in STAGES], 0.0)
    for stage, module, name in STAGES:
        owner = importlib.import_module(module)
        *parents, leaf = name.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, leaf, _timed(getattr(owner, leaf), stage, spent))
    start = time.perf_counter()
    run_ours(root, output)
    spent["total"] = time.perf_counter() - start
    return spent


def _timed(function, stage: str, spent: dict[str, float]):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - start

    return timed


def _child(target: str, root: str, output: str, queue: multiprocessing.Queue) -> None:
    import shapely  # noqa: F401  (imports are not what is measured)

    import rsgpt4v.convert  # noqa: F401

    if target == "stages":
        queue.put(run_ours_by_stage(Path(root), Path(output)))
        return
    start = time.perf_counter()
    objects = {"ours": run_ours, "reference": run_reference}[target](Path(root), Path(output))
    elapsed = time.perf_counter() - start
    queue.put((objects, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(target: str, root: Path, output: Path) -> tuple[int, float, float] | dict[str, float]:
    """One run in a fresh process: (objects, seconds, peak RSS MiB), or seconds per stage."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, str(root), str(output), queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200_000, help="objects in the large set")
    parser.add_argument("--per-file", type=int, default=250, help="objects per label file")
    args = parser.parse_args()
    files = -(-args.objects // args.per_file)
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        total = make_dataset(big, files, args.per_file)
        make_dataset(small, max(1, files // 4), args.per_file, seed=1)
        print(f"dataset: {files} label files, {total} objects ({args.per_file} per file)")
        ref = measure("reference", big, Path(tmp) / "ref.jsonl")
        ours = measure("ours", big, Path(tmp) / "ours.jsonl")
        ours_small = measure("ours", small, Path(tmp) / "small.jsonl")
        stages = measure("stages", big, Path(tmp) / "stages.jsonl")
    for name, (objects, seconds, rss) in (("reference", ref), ("rsgpt4v", ours)):
        print(
            f"{name:>10}: {objects} objects in {seconds:6.2f} s = {objects / seconds:9.0f} "
            f"objects/s, peak RSS {rss:6.0f} MiB"
        )
    print(f"speed ratio (rsgpt4v / reference): {ref[1] / ours[1]:.2f}x  (target >= 3x)")
    print(
        f"peak RSS: {ours_small[2]:.0f} MiB at {files // 4} files, {ours[2]:.0f} MiB at "
        f"{files} files (flat: {ours[2] / ours_small[2]:.2f}x for 4x the files)"
    )
    total = stages.pop("total")
    stages["other"] = total - sum(stages.values())
    print(f"rsgpt4v by stage (one more run, {total:.2f} s, instrumented):")
    print("  " + ", ".join(f"{k} {v:.2f} s ({v / total:.0%})" for k, v in stages.items()))


if __name__ == "__main__":
    main()
