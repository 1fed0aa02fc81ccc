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
from rsgpt4v.cli_options import FROM_OPTIONS, settings_options
from rsgpt4v.convert_settings import ConvertSettings
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.export_settings import (
    BOXES_HELP,
    DECIMALS_HELP,
    MIN_PIXELS_HELP,
    ExportSettings,
)
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.instruct.settings import RulesSettings
from rsgpt4v.tile_settings import TileSettings
from rsgpt4v.validate.settings import ValidationOptions

app = typer.Typer(
    help="Remote-sensing instruction data for multimodal LLMs: convert legacy datasets, write "
    "instructions (rules or a vision LLM), validate them, export training files, fine-tune and "
    "evaluate.",
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


ENGINE_HELP = (
    "local (this machine), or ray: fan out over a Ray cluster through Ray Data (pip install "
    "'rsgpt4v\\[ray]'; see docs/scale.md); the output is the local engine's, line for line."
)
RAY_ADDRESS_HELP = "ray: the cluster to join (default $RAY_ADDRESS, else a local instance)."


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
@settings_options(lambda error: _fail(error), settings=ConvertSettings)
def convert(
    dataset: str = typer.Argument(..., help="Converter name (see `rsgpt4v datasets`)."),
    root: Path = typer.Argument(..., help="The dataset's root folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Records file to write (JSONL)."),
    settings: ConvertSettings = FROM_OPTIONS,
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Convert a legacy dataset into records (one JSON line per image)."""
    from rsgpt4v.convert import ConvertStage
    from rsgpt4v.engines import run_stage

    stage = ConvertStage(dataset, root, output, settings)
    try:
        summary = run_stage(stage, engine, ray_address, _progress(f"convert {dataset}"))
    except RsgptError as error:
        _fail(error)
    typer.echo(
        f"{summary.records} records ({summary.unlabelled} without object labels), "
        f"{summary.objects} objects "
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
@settings_options(lambda error: _fail(error), rules=RulesSettings, llm=LlmSettings)
def instruct(
    records: Path = typer.Argument(..., help="Records file written by `rsgpt4v convert`."),
    output: Path = typer.Option(..., "-o", "--output", help="Instructions file to write (JSONL)."),
    generator: str = typer.Option(
        "rules",
        "--generator",
        help="Who writes the answers: rules (offline, exact), llm (a vision LLM on any "
        "OpenAI-compatible server: local → global → multi-turn passes), both (rules, then llm).",
    ),
    rules: RulesSettings = FROM_OPTIONS,
    llm: LlmSettings = FROM_OPTIONS,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="llm: print each pass's rendered prompt (later passes fed placeholder replies) and "
        "the run's estimate; no call.",
    ),
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Write (question, answer) instructions for every record."""
    from rsgpt4v.engines import run_stage
    from rsgpt4v.instruct.stage import RulesStage

    def run_rules(source: Path, out: Path):  # -> rsgpt4v.instruct.InstructionSummary
        stage = RulesStage(
            source,
            out,
            rules,
            image_root=llm.image_root,
            vocabulary_from=records,  # a --shard run asks about its whole input's classes
        )
        return run_stage(stage, engine, ray_address, _progress("instruct"))

    try:
        if generator != "rules" or llm.shard is not None:
            _instruct_llm(generator, records, output, run_rules, llm, dry_run, engine, ray_address)
            return
        summary = run_rules(records, output)
    except RsgptError as error:
        _fail(error)
    _echo_rules_summary(summary)


def _echo_rules_summary(summary) -> None:
    """Print what the rules stage wrote (an rsgpt4v.instruct.InstructionSummary)."""
    per_task = ", ".join(f"{task} {n}" for task, n in sorted(summary.per_task.items()))
    typer.echo(
        f"{summary.instructions} instructions ({per_task or 'none'}) from {summary.records} "
        f"records → {summary.output}"
    )
    if summary.mix is not None:
        stats = summary.mix
        typer.echo(
            f"mix: {stats.dropped} dropped by weight, {stats.capped} by caps, "
            f"{stats.repeated} repeats added"
        )
        for source in stats.unused_sources:
            typer.echo(f"warning: mix source {source!r} matched no record", err=True)
    if summary.model_input:
        typer.echo(f"object sizes: {summary.model_input}")
    for reason, count in sorted(summary.skips.items()):
        typer.echo(f"not asked: {reason}: {count}")


def _instruct_llm(
    generator: str,
    records: Path,
    output: Path,
    run_rules: Callable,
    settings: LlmSettings,
    dry_run: bool,
    engine: str,
    address: str | None,
) -> None:
    """``instruct`` with --generator llm|both or --shard (see rsgpt4v.instruct.llm.command)."""
    import tempfile

    from rsgpt4v.engines.manifests import drop_manifest, write_manifest
    from rsgpt4v.instruct.llm.command import GENERATORS, run_llm_instruct, write_shard

    shard = settings.shard
    if generator not in GENERATORS:
        raise RsgptError(f"unknown generator {generator!r}; available: {', '.join(GENERATORS)}")
    if generator == "rules":
        with tempfile.TemporaryDirectory(prefix="rsgpt4v-shard-") as folder:
            _echo_rules_summary(run_rules(write_shard(records, shard, Path(folder)), output))
        if shard is not None:  # the whole shard is written: merge-shards can prove the set
            write_manifest(output, shard, {"records": records})
        return

    def rules_line(source: Path, out: Path) -> str:
        summary = run_rules(source, out)
        return f"{summary.instructions} instructions from {summary.records} records"

    report = run_llm_instruct(
        generator, records, output, settings, dry_run=dry_run, rules=rules_line, engine=engine,
        address=address,
    )  # fmt: skip
    if shard is not None and not dry_run:
        # a run that stopped early (budget, errors) has not written its whole shard
        stopped = report.error or any(w.startswith("stopped:") for w in report.warnings)
        if stopped:
            drop_manifest(output)
        else:
            write_manifest(output, shard, {"records": records})
    for line in report.lines:
        typer.echo(line)
    for warning in report.warnings:
        typer.echo(warning)
    if report.error:
        raise RsgptError(report.error)


@app.command()
@settings_options(lambda error: _fail(error), settings=ExportSettings)
def export(
    instructions: Path = typer.Argument(..., help="Instructions file written by `instruct`."),
    output: Path = typer.Option(..., "-o", "--output", help="Training file to write."),
    settings: ExportSettings = FROM_OPTIONS,
) -> None:
    """Export instructions as a training file, boxes in the target model's style."""
    from rsgpt4v.export import write_export

    fmt, boxes, render_images = settings.fmt, settings.boxes, settings.render_images
    try:
        summary = write_export(instructions, output, settings, _progress(f"export {fmt}"))
    except RsgptError as error:
        _fail(error)
    typer.echo(f"{summary.written} conversations ({fmt}, boxes {boxes}) → {summary.output}")
    if boxes == "qwen25vl" and fmt in ("llava", "sharegpt") and render_images is None:
        typer.echo(
            "warning: qwen25vl boxes are pixels of the image resized within --max-pixels; "
            "LLaMA-Factory resizes by its own rule first (docs/families.md), so give "
            "--render-images DIR to write every image already at its boxes' size",
            err=True,
        )
    if render_images is not None:
        typer.echo(
            f"images rendered to 8-bit RGB PNG: {summary.images_rendered} written, "
            f"{summary.images_reused} up to date, in {render_images}"
        )
    for path in summary.side_files:
        typer.echo(f"also written: {path}")
    if summary.oblique_skipped:
        typer.echo(
            f"not written: {summary.oblique_skipped} questions about thin oblique objects, "
            f"which {boxes} boxes cannot outline (geochat and pixel write them oriented); "
            f"listed in {summary.not_written_file}"
        )
    if summary.rejects_file:
        typer.echo(f"{len(summary.rejects)} rejected instructions listed in {summary.rejects_file}")


@app.command()
@settings_options(lambda error: _fail(error), options=ValidationOptions)
def validate(
    instructions: Path = typer.Argument(
        ..., help="Instructions (rsgpt4v JSONL) or a LLaVA / ShareGPT JSON or JSONL dataset."
    ),
    records: Path = typer.Option(
        ..., "--records", help="Records file of the instructions' images (the ground truth)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the instructions that pass here (JSONL)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write summary.json, figures and an HTML sample viewer here."
    ),
    options: ValidationOptions = FROM_OPTIONS,
    strict: bool = typer.Option(
        False, "--strict", help="Exit with status 1 when any instruction is rejected."
    ),
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Check instructions against their records' labels; keep what passes, list the rest."""
    from rsgpt4v.validate.run import validate_instructions

    try:
        summary = validate_instructions(
            instructions,
            records,
            output,
            report_dir=report,
            options=options,
            progress=_progress,
            engine=engine,
            address=ray_address,
        )
    except RsgptError as error:
        _fail(error)
    kept_to = f" → {summary.output}" if summary.output else ""
    typer.echo(
        f"{summary.instructions} instructions ({summary.format}): {summary.kept} kept, "
        f"{summary.rejected} rejected{kept_to}"
    )
    for reason, count in summary.reasons.items():
        typer.echo(f"{reason}: {count}")
    if summary.variety:
        variety = summary.variety
        typer.echo(
            f"phrasing variety per 1,000 instructions: "
            f"{variety['answer_templates_per_1000']:,.0f} answer templates, "
            f"{variety['vocabulary_per_1000']:,.0f} distinct words "
            f"({variety['answer_templates']} templates, {variety['vocabulary']} words in all)"
        )
    if summary.rejects_file:
        typer.echo(f"rejections listed in {summary.rejects_file}")
    if not summary.leakage_checked:
        typer.echo("leakage not checked (needs --image-root)", err=True)
    if summary.report:
        typer.echo(f"report: {summary.report}")
    if strict and summary.rejected:
        raise typer.Exit(code=1)


@app.command()
def demo(
    output: Path = typer.Option(
        Path("demo-output"), "-o", "--output", help="Folder for the sample and every output."
    ),
    boxes: str = typer.Option("llava", "--boxes", help="Box text style of the LLaVA export."),
) -> None:
    """Run convert → instruct → validate → export on a generated sample of GeoTIFF scenes."""
    from rsgpt4v.demo import print_demo_summary, run_demo

    try:
        result = run_demo(output, boxes=boxes, progress=_progress)
    except RsgptError as error:
        _fail(error)
    print_demo_summary(result)


@app.command()
def coco(
    records: Path = typer.Argument(..., help="Records file written by `rsgpt4v convert`."),
    output: Path = typer.Option(..., "-o", "--output", help="COCO instances JSON to write."),
) -> None:
    """Export records as a COCO instances JSON (categories by name, ids in sorted-name order).

    Image file names are the records' paths, relative to the convert ROOT; unlabelled records
    are left out.
    """
    from rsgpt4v.coco_export import records_to_coco

    try:
        summary = records_to_coco(records, output)
    except RsgptError as error:
        _fail(error)
    typer.echo(
        f"{summary.images} images, {summary.annotations} annotations in "
        f"{len(summary.categories)} categories → {summary.output}"
    )
    if summary.unlabelled:
        typer.echo(f"{summary.unlabelled} unlabelled records left out")


@app.command()
@settings_options(lambda error: _fail(error), settings=TileSettings)
def tile(
    records: Path = typer.Argument(..., help="Records file written by `rsgpt4v convert`."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Tile records to write (JSONL); OUTPUT.manifest.jsonl beside."
    ),
    tiles_dir: Path = typer.Option(
        ..., "--tiles-dir", help="Folder for the tile images; tile image paths are relative to it."
    ),
    image_root: Path = typer.Option(
        ..., "--image-root", help="Folder the records' image paths are relative to (convert ROOT)."
    ),
    settings: TileSettings = FROM_OPTIONS,
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Split large scenes into overlapping tiles, with their objects (one record per tile)."""
    from rsgpt4v.engines import run_stage
    from rsgpt4v.tiling import TileStage

    stage = TileStage(records, output, tiles_dir, image_root, settings)
    try:
        summary = run_stage(stage, engine, ray_address, _progress("tile"))
    except RsgptError as error:
        _fail(error)
    typer.echo(
        f"{summary.tiles} tiles with {summary.objects} objects from {summary.records} records "
        f"→ {summary.output} (manifest {summary.manifest})"
    )
    for what, count in sorted(summary.counts.items()):
        typer.echo(f"{what}: {count}")
    if summary.rejects_file:
        typer.echo(f"{len(summary.rejects)} rejected records listed in {summary.rejects_file}")


@app.command()
def predict(
    source: Path = typer.Argument(
        ...,
        help="Records (benchmarks), instructions or an export file to ask about; or a finetune "
        "run folder: its held-out instructions, asked of its base model + adapter in its box "
        "convention.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Predictions file to write (JSONL)."),
    benchmark: str = typer.Option(
        "instructions",
        "--benchmark",
        help="rsvqa-lr, rsvqa-hr, dior-rsvg, rsicd, ucm-captions, sydney-captions, "
        "nwpu-captions, instructions (a held-out split of an instructions file) or export (of "
        "an exported LLaVA / ShareGPT file, boxes read in the --boxes style).",
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Model folder (AutoModelForImageTextToText + AutoProcessor)."
    ),
    adapter: Path | None = typer.Option(None, "--adapter", help="peft adapter folder on top."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder the image paths are relative to (the convert ROOT)."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Split to ask about (default: the benchmark's test split; all instructions).",
    ),
    boxes: str | None = typer.Option(
        None,
        "--boxes",
        help="Model family whose box convention the model was trained with (default: the "
        "adapter's finetune run, else llava). " + BOXES_HELP.split(": ", 1)[1],
    ),
    square_pad: bool | None = typer.Option(
        None,
        "--square-pad/--no-square-pad",
        help="Show images padded to a centred square, boxes relative to it (default: the "
        "family's; on for llava).",
    ),
    box_decimals: int | None = typer.Option(None, "--box-decimals", min=0, help=DECIMALS_HELP),
    max_pixels: int | None = typer.Option(
        None,
        "--max-pixels",
        min=1,
        help="qwen25vl: the processor's max_pixels (default: the "
        "processor's own, the adapter's after finetune).",
    ),
    min_pixels: int | None = typer.Option(None, "--min-pixels", min=1, help=MIN_PIXELS_HELP),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Questions per batch."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Answer length cap."),
    max_side: int | None = typer.Option(
        None, "--max-side", min=16, help="Longer image side given to the model (default: full)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Ask at most this many."),
    items_only: bool = typer.Option(
        False, "--items-only", help="Write the questions without a model, for another system."
    ),
) -> None:
    """Answer a benchmark's questions with a model (greedy, batched) → predictions JSONL."""
    from rsgpt4v.evaluate.predict import GenerationSettings, predict_benchmark, trained_run
    from rsgpt4v.families import BoxConvention

    try:
        run = trained_run(source if source.is_dir() else adapter)
        if source.is_dir():
            if run is None:
                raise InputError("not a finetune run folder (no finetune.yaml)", file=source)
            source, adapter = run.held_out, adapter or run.adapter
            model = model or run.model
        if model is None and not items_only:
            raise RsgptError("give --model MODEL_DIR, or --items-only to write the questions")
        trained = run.boxes if run is not None else BoxConvention()
        convention = BoxConvention(
            boxes or trained.family,
            square_pad if square_pad is not None else (None if boxes else trained.square_pad),
            box_decimals,
            max_pixels if max_pixels is not None else (None if boxes else trained.max_pixels),
            min_pixels,
        )
        summary = predict_benchmark(
            benchmark,
            source,
            output,
            split=split,
            limit=limit,
            model_dir=None if items_only else model,
            adapter=adapter,
            image_root=image_root,
            boxes=convention,
            settings=GenerationSettings(
                batch_size=batch_size, max_new_tokens=max_new_tokens, max_side=max_side
            ),
        )
    except RsgptError as error:
        _fail(error)
    what = "questions" if items_only else "predictions"
    typer.echo(f"{summary.written} {what} → {summary.output} (run file {summary.run_file})")


@app.command()
def evaluate(
    predictions: Path = typer.Argument(..., help="Predictions JSONL (from `predict` or else)."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder for results.json and results.md."
    ),
    items: Path | None = typer.Option(
        None,
        "--items",
        help="Items file (`predict --items-only`) when PREDICTIONS holds only id and prediction.",
    ),
    boxes: str | None = typer.Option(
        None, "--boxes", help="Box style of the answers (default: each line's box_style)."
    ),
    bin_counts: bool | None = typer.Option(
        None,
        "--bin-counts/--exact-counts",
        help="Score VQA counts in RSVQA bins (default: the benchmark's rule).",
    ),
    bin_areas: bool | None = typer.Option(
        None, "--bin-areas/--exact-areas", help="Score VQA areas in RSVQA bins."
    ),
    meteor: bool = typer.Option(
        True, "--meteor/--no-meteor", help="Compute METEOR (needs Java; ~10 s to start)."
    ),
) -> None:
    """Score predictions: captions, VQA, grounding, counting, classification metrics."""
    from rsgpt4v.evaluate.results import RESULTS_JSON, RESULTS_MD, evaluate_predictions, headline

    try:
        result = evaluate_predictions(
            predictions,
            output,
            items=items,
            box_style=boxes,
            bin_counts=bin_counts,
            bin_areas=bin_areas,
            meteor=meteor,
        )
    except RsgptError as error:
        _fail(error)
    for task, scores in result["tasks"].items():
        numbers = ", ".join(
            f"{k} {v:.4f}" for k, v in headline(scores).items() if isinstance(v, float)
        )
        typer.echo(f"{task} ({scores['metric']}, n={scores.get('n')}): {numbers}")
        if scores.get("ceiling"):
            ceiling = ", ".join(
                f"{k} {v:.4f}" for k, v in scores["ceiling"].items() if v is not None
            )
            typer.echo(f"  ceiling of the box convention (a perfect model): {ceiling}")
        for metric, reason in (scores.get("unavailable") or {}).items():
            typer.echo(f"warning: {task}: {metric} unavailable: {reason}", err=True)
    typer.echo(f"→ {output / RESULTS_JSON}, {output / RESULTS_MD}")


@app.command("compare-runs")
def compare_runs(
    results: list[Path] = typer.Argument(..., help="results.json files (or their folders)."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the Markdown table here (and OUTPUT.json)."
    ),
) -> None:
    """Put the metrics of several evaluation runs side by side."""
    import json

    from rsgpt4v.evaluate.results import compare_runs as compare

    try:
        markdown, table = compare(results)
    except RsgptError as error:
        _fail(error)
    if output is None:
        typer.echo(markdown)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown, encoding="utf-8")
    output.with_name(output.name + ".json").write_text(json.dumps(table, indent=2) + "\n")
    typer.echo(f"{len(results)} runs compared → {output}")


@app.command()
def finetune(
    config: Path = typer.Argument(
        ..., help="YAML config, or the name of a bundled one (tiny-llava, llava-1.5-7b-lora, ...)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key: --set train.learning_rate=1e-4 (repeatable)."
    ),
) -> None:
    """Fine-tune a multimodal LLM (LoRA, QLoRA, DoRA, MoE-LoRA) on exported instructions."""
    import logging

    from rsgpt4v.finetune.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_config(config, overrides)
        from rsgpt4v.finetune.train import run_finetune

        result = run_finetune(settings)
    except RsgptError as error:
        _fail(error)
    typer.echo(f"adapter: {result.adapter}")


@app.command()
def merge(
    run: Path = typer.Argument(..., help="A finetune output_dir (or its adapter/ folder)."),
    output: Path = typer.Argument(..., help="Folder for the merged model."),
    base: Path | None = typer.Option(
        None, "--base", help="Full-precision base model (default: the run's model)."
    ),
    dtype: str = typer.Option(
        "auto", "--dtype", help="Saved dtype: auto (the base's), float32, bfloat16, float16."
    ),
) -> None:
    """Merge a LoRA/DoRA adapter into its base; reload it and compare logits."""
    try:
        from rsgpt4v.finetune.merge import merge_adapter

        result = merge_adapter(run, output, base=base, dtype=dtype)
    except RsgptError as error:
        _fail(error)
    typer.echo(f"merged model ({result.dtype}): {result.output}")
    typer.echo(
        f"max |logit diff| merged vs adapter: {result.max_abs_diff:.3g} (in memory), "
        f"{result.reload_max_abs_diff:.3g} (reloaded)"
    )


@app.command("merge-shards")
def merge_shards(
    shards: list[Path] = typer.Argument(
        ..., help="JSONL shards: records, instructions, tile records or tile manifests."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Merged file to write (JSONL)."),
    records: Path | None = typer.Option(
        None,
        "--records",
        help="The records file the shards were made from: instructions come back in its order "
        "(the file of one unsharded run); without it, lines are sorted by id.",
    ),
) -> None:
    """Join shards (of `--shard I/N` runs on several machines) into one file.

    The result is the same file whatever the number of shards or the machines that wrote them.
    A missing or repeated shard stops it (exit 2) before anything is written: shards' manifests
    (PART.shard.json) prove the set, else their ids do (see docs/scale.md).
    """
    from rsgpt4v.engines.merge import merge_shards as merge_files

    try:
        count = merge_files(shards, output, records)
    except RsgptError as error:
        _fail(error)
    typer.echo(f"{count} lines from {len(shards)} shards → {output}")


def main() -> None:
    """Entry point of the ``rsgpt4v`` script."""
    app()


if __name__ == "__main__":
    main()
