"""Benchmark: records/s of the local engine against the ray engine with 1 and 2 workers.

Writes bench records (``bench/instruct.py``'s generator: ~10 objects each), then runs two
stages on each engine in this process: ``instruct`` with the rules (records/s) and ``validate``
of those instructions (instructions/s, without the pixel-reading leakage pass). The ray engine
runs on a local Ray instance started with 1, then 2 CPUs (one worker per CPU); its start-up
(``ray.init`` and one small unit per worker, which imports rsgpt4v there) is timed apart and left
out of the rates. Prints each rate and its ratio to the local engine's,
and checks that the outputs are the same up to line order.

    python bench/scale.py [--records 20000] [--objects-per-record 10] [--unit-lines 1000]

Ray's per-task cost (scheduling, shipping the unit, a worker's first import of rsgpt4v) is paid
once per unit, so small inputs favour the local engine; the ray engine pays off when units are
large and workers many (a cluster), not on a laptop's two cores shared with other work.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmark's record generator

from instruct import make_records

TASKS = "counting,grounding,presence,region_identification,brief_caption"


def canonical(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines)


def run_local(records: Path, folder: Path) -> dict[str, float]:
    from rsgpt4v.instruct import generate_instructions
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    start = time.perf_counter()
    summary = generate_instructions(records, folder / "local.jsonl", tasks=TASKS)
    instruct = summary.records / (time.perf_counter() - start)
    start = time.perf_counter()
    checked = validate_instructions(
        folder / "local.jsonl", records, folder / "local.clean.jsonl",
        options=ValidationOptions(leakage=False),
    )  # fmt: skip
    validate = checked.instructions / (time.perf_counter() - start)
    return {"instruct": instruct, "validate": validate}


def run_ray(records: Path, folder: Path, cpus: int, unit_lines: int) -> dict[str, float]:
    import ray

    from rsgpt4v.engines import open_engine
    from rsgpt4v.engines.ray import quiet_ray_data
    from rsgpt4v.instruct.settings import RulesSettings
    from rsgpt4v.instruct.stage import RulesStage
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    rules = RulesSettings(tasks=TASKS)
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    quiet_ray_data()
    warm_up = folder / "warm_up.jsonl"  # one unit per worker: each imports rsgpt4v once
    with records.open(encoding="utf-8") as handle:
        warm_up.write_text(handle.readline() * cpus, encoding="utf-8")
    try:
        with open_engine("ray") as engine:  # the session started above
            engine.run(RulesStage(warm_up, folder / "warm_up.out.jsonl", rules, lines_per_unit=1))
            started = time.perf_counter() - start
            out = folder / f"ray{cpus}.jsonl"
            start = time.perf_counter()
            summary = engine.run(RulesStage(records, out, rules, lines_per_unit=unit_lines))
            instruct = summary.records / (time.perf_counter() - start)
        start = time.perf_counter()
        checked = validate_instructions(
            out, records, folder / f"ray{cpus}.clean.jsonl",
            options=ValidationOptions(leakage=False), engine="ray",
            lines_per_unit=unit_lines * 5,
        )  # fmt: skip
        validate = checked.instructions / (time.perf_counter() - start)
    finally:
        ray.shutdown()
    same = canonical(out) == canonical(folder / "local.jsonl") and canonical(
        folder / f"ray{cpus}.clean.jsonl"
    ) == canonical(folder / "local.clean.jsonl")
    return {"instruct": instruct, "validate": validate, "start": started, "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--objects-per-record", type=int, default=10)
    parser.add_argument("--unit-lines", type=int, default=1000, help="records per ray task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        records = folder / "records.jsonl"
        make_records(records, args.records, args.objects_per_record)
        print(f"input: {args.records} records, {args.unit_lines} records per ray task ({TASKS})")
        local = run_local(records, folder)
        print(
            f"local:          instruct {local['instruct']:7.0f} records/s, "
            f"validate {local['validate']:7.0f} instructions/s"
        )
        for cpus in (1, 2):
            result = run_ray(records, folder, cpus, args.unit_lines)
            print(
                f"ray, {cpus} worker{'s' if cpus > 1 else ' '}: "
                f"instruct {result['instruct']:7.0f} records/s "
                f"({result['instruct'] / local['instruct']:.2f}x local), "
                f"validate {result['validate']:7.0f} instructions/s "
                f"({result['validate'] / local['validate']:.2f}x local); "
                f"start-up {result['start']:.1f} s; same output: {result['same']}"
            )


if __name__ == "__main__":
    main()
