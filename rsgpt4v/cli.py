"""The ``rsgpt4v`` command: one verb per pipeline stage.

Heavy modules are imported inside the commands so that ``rsgpt4v --help`` stays fast. Errors a
user can fix are printed as one line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import typer

from rsgpt4v import __version__
from rsgpt4v.errors import RsgptError

app = typer.Typer(
    help="Remote-sensing instruction data for multimodal LLMs: convert legacy datasets, write "
    "instructions, export training files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}
T = TypeVar("T")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rsgpt4v {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def _progress(description: str) -> Callable[[Iterable[T], int | None], Iterator[T]]:
    """A wrapper that shows a progress bar on stderr (a terminal only; stdout stays clean)."""

    def wrap(items: Iterable[T], total: int | None) -> Iterator[T]:
        from rich.console import Console
        from rich.progress import track

        console = Console(stderr=True)
        if not console.is_terminal:
            yield from items
            return
        yield from track(
            items, description=description, total=total, transient=True, console=console
        )

    return wrap


def _fail(error: RsgptError) -> None:
    if _state["debug"]:
        raise error
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code=2)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        options[key.strip()] = value.strip()
    return options


@app.command()
def datasets() -> None:
    """List every dataset converter with what it reads and the layout it expects."""
    from rich.console import Console
    from rich.table import Table

    from rsgpt4v.converters import available_converters

    table = Table("name", "description", "expected layout", "options", show_lines=True)
    for name, converter in available_converters().items():
        options = "\n".join(f"{k}: {v}" for k, v in converter.OPTIONS.items())
        table.add_row(name, converter.DESCRIPTION, converter.LAYOUT, options)
    Console(width=160).print(table)


@app.command()
def convert(
    dataset: str = typer.Argument(..., help="Converter name (see `rsgpt4v datasets`)."),
    root: Path = typer.Argument(..., help="The dataset's root folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Records file to write (JSONL)."),
    split: str | None = typer.Option(None, "--split", help="Convert only this split."),
    captions: Path | None = typer.Option(
        None, "--captions", help="JSON object mapping image paths (or stems) to caption lists."
    ),
    option: list[str] = typer.Option(
        [], "-O", "--option", help="Converter option KEY=VALUE (repeatable), e.g. labels=hbb."
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Skip bad items and list them in OUTPUT.rejects.jsonl."
    ),
) -> None:
    """Convert a legacy dataset into records (one JSON line per image)."""
    from rsgpt4v.convert import convert_dataset

    try:
        summary = convert_dataset(
            dataset,
            root,
            output,
            split=split,
            skip_bad=skip_bad,
            captions=captions,
            options=_parse_options(option),
            progress=_progress(f"convert {dataset}"),
        )
    except RsgptError as error:
        _fail(error)
    typer.echo(
        f"{summary.records} records ({summary.unlabelled} unlabelled), {summary.objects} objects "
        f"in {len(summary.categories)} classes, {summary.captions} captions → {summary.output}"
    )
    for what, count in sorted(summary.counts.items()):
        typer.echo(f"{what}: {count}")
    for warning in summary.warnings[:5]:
        typer.echo(f"warning: {warning.file}: {warning.reason}", err=True)
    if len(summary.warnings) > 5:
        typer.echo(f"warning: … and {len(summary.warnings) - 5} more", err=True)
    if summary.rejects_file:
        typer.echo(f"{len(summary.rejects)} rejected items listed in {summary.rejects_file}")


@app.command()
def instruct(
    records: Path = typer.Argument(..., help="Records file written by `rsgpt4v convert`."),
    output: Path = typer.Option(..., "-o", "--output", help="Instructions file to write (JSONL)."),
    generator: str = typer.Option(
        "rules", "--generator", help="Who writes the answers: rules (offline, exact)."
    ),
    tasks: str | None = typer.Option(
        None,
        "--tasks",
        help="Comma-separated rule tasks (default all): brief_caption, counting, grounding.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the choice of phrasings."),
    image_root: Path | None = typer.Option(
        None,
        "--image-root",
        help="Folder the records' image paths are relative to (the convert ROOT), for rules "
        "that read pixels.",
    ),
) -> None:
    """Write (question, answer) instructions for every record."""
    from rsgpt4v.instruct import generate_instructions

    try:
        if generator != "rules":
            raise RsgptError(f"unknown generator {generator!r}; available: rules")
        summary = generate_instructions(
            records,
            output,
            tasks=tasks,
            seed=seed,
            image_root=image_root,
            progress=_progress("instruct"),
        )
    except RsgptError as error:
        _fail(error)
    per_task = ", ".join(f"{task} {n}" for task, n in sorted(summary.per_task.items()))
    typer.echo(
        f"{summary.instructions} instructions ({per_task or 'none'}) from {summary.records} "
        f"records → {summary.output}"
    )


@app.command()
def export(
    instructions: Path = typer.Argument(..., help="Instructions file written by `instruct`."),
    output: Path = typer.Option(..., "-o", "--output", help="Training file to write."),
    fmt: str = typer.Option("llava", "--format", help="Training format: llava."),
    boxes: str = typer.Option(
        "llava",
        "--boxes",
        help="Box text style: llava, qwen2vl, qwen25vl, geochat, minigptv2, internvl, pixel.",
    ),
    image_root: Path | None = typer.Option(
        None,
        "--image-root",
        help="Folder the image paths are relative to (the convert ROOT); "
        "images are checked and written relative to the output's folder.",
    ),
    square_pad: bool = typer.Option(
        False,
        "--square-pad",
        help="Normalise boxes to the image padded to a centred square, as LLaVA-1.5 sees it "
        "with image_aspect_ratio=pad.",
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Skip bad instructions and list them in a rejects file."
    ),
) -> None:
    """Export instructions as a training file, boxes in the target model's style."""
    from rsgpt4v.export import export_instructions

    try:
        summary = export_instructions(
            instructions,
            output,
            fmt=fmt,
            boxes=boxes,
            image_root=image_root,
            square_pad=square_pad,
            skip_bad=skip_bad,
            progress=_progress(f"export {fmt}"),
        )
    except RsgptError as error:
        _fail(error)
    typer.echo(f"{summary.written} conversations ({fmt}, boxes {boxes}) → {summary.output}")
    if summary.rejects_file:
        typer.echo(f"{len(summary.rejects)} rejected instructions listed in {summary.rejects_file}")


@app.command()
def demo(
    output: Path = typer.Option(
        Path("rsgpt4v-demo"), "-o", "--output", help="Folder for the sample and every output."
    ),
    boxes: str = typer.Option("llava", "--boxes", help="Box text style of the LLaVA export."),
) -> None:
    """Run convert → instruct → export on a generated sample of GeoTIFF scenes."""
    from rsgpt4v.demo import print_demo_summary, run_demo

    try:
        result = run_demo(output, boxes=boxes, progress=_progress)
    except RsgptError as error:
        _fail(error)
    print_demo_summary(result)


def main() -> None:
    """Entry point of the ``rsgpt4v`` script."""
    app()


if __name__ == "__main__":
    main()
