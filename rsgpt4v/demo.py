"""``rsgpt4v demo``: the whole pipeline on a generated sample, as a newcomer's first run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.convert import ConversionSummary, convert_dataset
from rsgpt4v.export import ExportSummary, export_instructions
from rsgpt4v.instruct.stage import InstructionSummary, generate_instructions
from rsgpt4v.sample import make_sample
from rsgpt4v.validate.run import ValidationOptions, ValidationSummary, validate_instructions


@dataclass
class DemoResult:
    sample: Path
    conversion: ConversionSummary
    instructions: InstructionSummary
    export: ExportSummary
    validation: ValidationSummary


def run_demo(
    out_dir: str | Path, *, boxes: str = "llava", progress: Callable | None = None
) -> DemoResult:
    """Generate the sample, then convert → instruct → validate → export into out_dir.

    Validation checks the instructions against the records and writes the HTML report (stats,
    figures, sample viewer) to ``out_dir/report``.
    """
    out_dir = Path(out_dir)
    sample = make_sample(out_dir / "sample")
    bar = progress or (lambda _description: None)
    conversion = convert_dataset(
        "dota",
        sample,
        out_dir / "records.jsonl",
        split="train",
        captions=sample / "captions.json",
        progress=bar("convert"),
    )
    instructions = generate_instructions(
        conversion.output,
        out_dir / "instructions.jsonl",
        image_root=sample,  # lets the rules name object colours from the pixels
        progress=bar("instruct"),
    )
    validation = validate_instructions(
        instructions.output,
        conversion.output,
        report_dir=out_dir / "report",
        options=ValidationOptions(image_root=sample),
        progress=progress,
    )
    export = export_instructions(
        instructions.output,
        out_dir / "llava.json",
        boxes=boxes,
        image_root=sample,
        progress=bar("export"),
    )
    return DemoResult(sample, conversion, instructions, export, validation)


def print_demo_summary(result: DemoResult) -> None:
    """The table a newcomer reads: what was made and where it is."""
    from rich.console import Console
    from rich.table import Table

    conversion, instructions = result.conversion, result.instructions
    table = Table("stage", "what", "count", title="rsgpt4v demo")
    table.add_row("sample", "GeoTIFF scenes (UTM 33N, 0.5 m)", str(conversion.records))
    table.add_row("convert", "records", str(conversion.records))
    table.add_row("", "objects", str(conversion.objects))
    table.add_row("", "captions", str(conversion.captions))
    for n, (task, count) in enumerate(sorted(instructions.per_task.items())):
        table.add_row("instruct" if n == 0 else "", f"instructions: {task}", str(count))
    table.add_row("", "instructions: all", str(instructions.instructions))
    validation = result.validation
    table.add_row("validate", "kept", str(validation.kept))
    table.add_row("", "rejected", str(validation.rejected))
    table.add_row("export", "LLaVA conversations", str(result.export.written))
    Console().print(table)
    # Plain lines, never wrapped or cut, so the paths can be copied.
    print(f"sample images:  {result.sample / 'images'}")
    print(f"records:        {conversion.output}")
    print(f"instructions:   {instructions.output}")
    print(f"report:         {validation.report}")
    print(f"LLaVA JSON:     {result.export.output}")
    print()
    print("Switch the LLM on: --dry-run shows a prompt and the cost estimate without calling")
    print("anything; drop it to run (OpenAI reads OPENAI_API_KEY; for any other OpenAI-compatible")
    print("server add --base-url, e.g. --base-url http://localhost:8000/v1):")
    print(f"  {llm_command(result)}")


def llm_command(result: DemoResult) -> str:
    """The instruct command that adds the LLM passes to this demo's records."""
    records = result.conversion.output
    return (
        f"rsgpt4v instruct {records} -o {records.parent / 'llm.jsonl'} --generator llm "
        f"--model gpt-4o-mini --image-root {result.sample} --dry-run"
    )
