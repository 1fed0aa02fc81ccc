"""Benchmark: validation speed against the cost of only reading the same instructions.

Writes bench records (``bench/instruct.py``'s generator: ~10 objects each) and their rule
instructions, then times in one run (a) reading and parsing every instruction (the floor any
validator pays) and (b) ``validate_instructions`` with every check, without the report and the
leakage pass (those read pixels, which bench records do not have). Prints instructions/s of each
and their ratio.

    python bench/validate.py [--records 5000] [--objects-per-record 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmark's record generator

from instruct import make_records

TASKS = "counting,grounding,presence,region_identification,brief_caption"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--objects-per-record", type=int, default=10)
    args = parser.parse_args()
    from rsgpt4v.instruct import generate_instructions
    from rsgpt4v.schema import Instruction, read_jsonl
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    with tempfile.TemporaryDirectory() as tmp:
        records, instructions = Path(tmp) / "records.jsonl", Path(tmp) / "instructions.jsonl"
        make_records(records, args.records, args.objects_per_record)
        generate_instructions(records, instructions, tasks=TASKS)
        start = time.perf_counter()
        count = sum(1 for _ in read_jsonl(instructions, Instruction))
        read_seconds = time.perf_counter() - start
        start = time.perf_counter()
        summary = validate_instructions(
            instructions,
            records,
            Path(tmp) / "clean.jsonl",
            options=ValidationOptions(leakage=False),
        )
        seconds = time.perf_counter() - start
    print(f"input: {args.records} records, {count} instructions ({TASKS})")
    print(f"read only: {count / read_seconds:.0f} instructions/s")
    print(
        f"validate:  {summary.instructions / seconds:.0f} instructions/s "
        f"({summary.kept} kept, {summary.rejected} rejected; {seconds / read_seconds:.1f}x "
        f"the read-only time)"
    )


if __name__ == "__main__":
    main()
