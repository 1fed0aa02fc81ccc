"""Benchmark: rule-based instruction generation speed and memory.

Generates a records file (DOTA-like records with ~10 objects each, some captions, a UTM transform
and GSD so the metric and geographic rules run), then runs ``generate_instructions`` with every
rule task (or those of ``--tasks``) in a child process: records per wall-clock second, records per
CPU second of that process (the fairer number on a machine shared with other work; the target is
one core's throughput), instructions/s and peak RSS. It runs again on a quarter of the records to
show that memory stays flat as the input grows. As a baseline in the same run, a writer with no
rule logic writes as many instructions per record (``write_floor``): the fastest any rule set of
that density can go here.
``--per-task`` also times each task alone on the big input (records per CPU second when only it
runs).

    python bench/instruct.py [--records 100000] [--objects-per-record 10] [--tasks T,…] [--per-task]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("plane", "ship", "small-vehicle", "large-vehicle", "storage-tank", "harbor")


def make_records(path: Path, count: int, per_record: int, seed: int = 0) -> int:
    """Write count records of per_record objects each; return the number of objects."""
    from rsgpt4v.schema import ImageInfo, JsonlWriter, Record, trusted_object

    rng = np.random.default_rng(seed)
    size = 1024
    with JsonlWriter(path) as writer:
        for index in range(count):
            centres = rng.uniform(40, size - 40, (per_record, 2))
            extents = rng.uniform(6, 60, (per_record, 2))
            angles = np.radians(rng.uniform(-90, 90, per_record))
            objects = []
            for k, ((cx, cy), (w, h), angle) in enumerate(
                zip(centres, extents, angles, strict=True)
            ):
                c, s = np.cos(angle), np.sin(angle)
                frame = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
                corners = frame @ np.array([[c, s], [-s, c]]) + (cx, cy)
                x0, y0 = np.clip(corners.min(axis=0), 0, size)
                x1, y1 = np.clip(corners.max(axis=0), 0, size)
                objects.append(
                    trusted_object(
                        id=k,
                        category=CLASSES[int(rng.integers(len(CLASSES)))],
                        bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                        polygon=corners.round(1).tolist(),
                        difficult=False,
                        attributes={},
                    )
                )
            east = 500_000.0 + 600.0 * (index % 100)
            writer.write(
                Record(
                    id=f"bench/train/P{index:06d}",
                    dataset="bench",
                    split="train",
                    image=ImageInfo(
                        path=f"images/P{index:06d}.tif",
                        width=size,
                        height=size,
                        gsd=0.5,
                        crs="EPSG:32633",
                        transform=[east, 0.5, 0.0, 4_650_000.0, 0.0, -0.5],
                    ),
                    objects=objects,
                    captions=[f"An aerial image with {per_record} objects."],
                )
            )
    return count * per_record


def _child(records: str, output: str, tasks: str | None, queue: multiprocessing.Queue) -> None:
    from rsgpt4v.instruct import generate_instructions

    start, cpu_start = time.perf_counter(), time.process_time()
    summary = generate_instructions(records, output, tasks=tasks, seed=0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((summary.records, summary.instructions, dict(summary.per_task), elapsed, cpu, rss))


def write_floor(records: str, output: str, per_record: float) -> tuple[int, int]:
    """Write ``per_record`` instructions per record (on average) with no rule logic at all.

    Each is the least an instruction costs in this design: one phrasing drawn from a pool, two
    template fields filled, its JSON line written (the rules' own helpers), after the record is
    read and validated as the rules' run reads it. Its speed bounds any rule set that writes as
    many instructions per record. Returns (records, instructions).
    """
    from rsgpt4v.instruct.lines import RecordLines
    from rsgpt4v.instruct.rules.common import Draft
    from rsgpt4v.instruct.rules.task_random import TaskRandom
    from rsgpt4v.instruct.templates import fill_template
    from rsgpt4v.schema import JsonlWriter, Record, read_jsonl

    questions = [f"Question {k}: how many {{plural}} are there?" for k in range(8)]
    answer = "There are {count} {plural}."
    count = written = 0
    with JsonlWriter(output) as writer:
        for record in read_jsonl(records, Record):
            rng, lines = TaskRandom(record.id), RecordLines(record)
            wanted = round((count + 1) * per_record) - round(count * per_record)
            drafts = []
            for index in range(wanted):
                words = {"plural": "ships", "count": index}
                turn = (fill_template(rng.choice(questions), words), fill_template(answer, words))
                objects = (
                    record.objects[index % len(record.objects) :][:1] if record.objects else ()
                )
                drafts.append(Draft("floor", index, "floor/v1", [turn], objects))
            writer.write_lines(list(map(lines.line, drafts)))
            count, written = count + 1, written + wanted
    return count, written


def _floor_child(records: str, output: str, per_record: float, queue) -> None:
    cpu_start = time.process_time()
    count, written = write_floor(records, output, per_record)
    queue.put((count, written, time.process_time() - cpu_start))


def _in_child(target, *args):
    """What ``target(*args, queue)`` put in the queue, run in a fresh process (clean RSS)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def measure(
    records: Path, output: Path, tasks: str | None = None
) -> tuple[int, int, dict[str, int], float, float, float]:
    """(records, instructions, per task, wall seconds, CPU seconds, peak RSS MiB) of one run."""
    return _in_child(_child, str(records), str(output), tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--objects-per-record", type=int, default=10)
    parser.add_argument("--tasks", help="comma-separated rule tasks (default: all)")
    parser.add_argument("--per-task", action="store_true", help="also time each task alone")
    args = parser.parse_args()
    from rsgpt4v.instruct import parse_tasks

    task_names = parse_tasks(args.tasks)
    alone: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.jsonl", Path(tmp) / "small.jsonl"
        objects = make_records(big, args.records, args.objects_per_record)
        make_records(small, args.records // 4, args.objects_per_record, seed=1)
        print(f"input: {args.records} records, {objects} objects")
        out = Path(tmp) / "out.jsonl"
        records, instructions, per_task, seconds, cpu, rss = measure(big, out, args.tasks)
        floor_records, floor_written, floor_cpu = _in_child(
            _floor_child, str(big), str(out), instructions / records
        )
        *_, rss_small = measure(small, Path(tmp) / "out_small.jsonl", args.tasks)
        for task in task_names if args.per_task else ():
            alone[task] = measure(big, out, task)[4]
    print(
        f"rules: {records} records in {seconds:.1f} s wall = {records / seconds:.0f} records/s; "
        f"{cpu:.1f} CPU s = {records / cpu:.0f} records per CPU second "
        f"(target >= 2000 on one core); {instructions} instructions "
        f"= {instructions / cpu:.0f} per CPU second"
    )
    print(
        f"floor (the same {floor_written / floor_records:.1f} instructions per record, no rule "
        f"logic: one phrasing, two fields, the JSON line): "
        f"{floor_records / floor_cpu:.0f} records per CPU second; the rules run at "
        f"{(records / cpu) / (floor_records / floor_cpu):.2f} of it"
    )
    print("instructions per task: " + ", ".join(f"{t} {n}" for t, n in sorted(per_task.items())))
    if alone:
        print(
            "records per CPU second with one task alone: "
            + ", ".join(f"{t} {records / s:.0f}" for t, s in alone.items())
        )
    print(
        f"peak RSS: {rss_small:.0f} MiB at {args.records // 4} records, {rss:.0f} MiB at "
        f"{args.records} records (flat: {rss / rss_small:.2f}x for 4x the input)"
    )


if __name__ == "__main__":
    main()
