"""The ``validate`` stage: instructions + records → clean instructions, rejects, report.

Two stages on one engine: the leakage pass (:mod:`rsgpt4v.validate.leakage_stage`; only with an
image root: it reads the pixels) finds the records whose image is also in another split, then
the checks (:mod:`rsgpt4v.validate.check_stage`) read every instruction, reject the failed ones,
those of leaked images among them, and write the clean file, the rejects and the report. Records
are loaded once per process (:mod:`rsgpt4v.validate.tables`): they are the ground truth every
instruction is checked against.
"""

from __future__ import annotations

from pathlib import Path

from rsgpt4v.engines import check_engine, open_engine
from rsgpt4v.engines.stage import Bars
from rsgpt4v.paths import ImageRoot
from rsgpt4v.validate.check_stage import (
    INSTRUCTIONS_PER_UNIT,
    CheckStage,
    refuse_imports_on_a_cluster,
)
from rsgpt4v.validate.importer import detect_format
from rsgpt4v.validate.leakage_stage import LeakageStage
from rsgpt4v.validate.outputs import ValidationSummary
from rsgpt4v.validate.settings import ValidationOptions
from rsgpt4v.validate.tables import close_record_tables


def validate_instructions(
    instructions: str | Path,
    records: str | Path,
    output: str | Path | None = None,
    *,
    report_dir: str | Path | None = None,
    options: ValidationOptions | None = None,
    progress: Bars | None = None,
    engine: str = "local",
    address: str | None = None,
    lines_per_unit: int = INSTRUCTIONS_PER_UNIT,
) -> ValidationSummary:
    """Check every instruction against its record; write CLEAN, the rejects and the report.

    Without ``output`` nothing is kept, and the rejects go next to the instructions file
    (``instructions.jsonl.rejects.jsonl``). Leakage needs the pixels, so it runs only with an
    image root. ``progress``: the local engine's progress bars, by description; ``engine`` and
    ``address``: where both stages run (:func:`rsgpt4v.engines.open_engine`);
    ``lines_per_unit``: instructions per unit on a cluster.
    """
    options = options or ValidationOptions()
    instructions = Path(instructions)
    ImageRoot.of(options.image_root)  # a folder, or an error naming it
    fmt = detect_format(instructions) if options.fmt == "auto" else options.fmt
    if check_engine(engine) != "local":  # refused before a cluster is joined
        refuse_imports_on_a_cluster(fmt, instructions)
    output = Path(output) if output else None
    beside = output or instructions
    try:
        with open_engine(engine, address, progress) as running:
            leaks = None
            if options.leakage and options.image_root is not None:
                leakage = LeakageStage(
                    Path(records), options.image_root, beside, options.max_distance
                )
                leaks = running.run(leakage)
            check = CheckStage(
                instructions,
                Path(records),
                output,
                fmt,
                options,
                leaks=leaks,
                report_dir=Path(report_dir) if report_dir is not None else None,
                lines_per_unit=lines_per_unit,
            )
            return running.run(check)
    finally:
        close_record_tables()
