"""What ``rsgpt4v instruct`` does for ``--generator llm|both`` and ``--shard``, kept out of cli.py.

The LLM passes run as a stage (:class:`~rsgpt4v.instruct.llm.stage.LlmStage`) on either engine.
``both`` writes the rule instructions first (the unchanged rules stage, into a temporary file) and
then the LLM ones after them in the same output. ``--shard I/N`` keeps the records whose id hashes
to shard I, for every generator, so N machines can split one input and their outputs add up to the
whole run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.engines import run_stage
from rsgpt4v.errors import InputError
from rsgpt4v.instruct.llm.generate import LlmSummary
from rsgpt4v.instruct.llm.record_runs import shard_records
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.instruct.llm.stage import LlmStage, refuse_on_cluster
from rsgpt4v.schema import JsonlWriter, Record, read_jsonl

GENERATORS = ("rules", "llm", "both")


@dataclass
class LlmRunReport:
    """What the command prints, and whether the run ended in error."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def write_shard(records: Path, shard: tuple[int, int], folder: Path) -> Path:
    """The shard's records as their own file (for the rules stage, which reads a file)."""
    path = folder / f"records.shard{shard[0]}of{shard[1]}.jsonl"
    with JsonlWriter(path) as writer:
        for record in shard_records(read_jsonl(records, Record), shard):
            writer.write(record)
    return path


def run_llm_instruct(
    generator: str,
    records: Path,
    output: Path,
    settings: LlmSettings,
    *,
    dry_run: bool,
    rules: Callable[[Path, Path], str],
    engine: str = "local",
    address: str | None = None,
) -> LlmRunReport:
    """Run the LLM passes (after the rules for ``both``) on the engine ``engine`` (Ray: joining
    the cluster at ``address``); ``rules(records, out)`` runs the rules stage and returns its
    summary line."""
    if generator not in GENERATORS:
        raise InputError(f"unknown generator {generator!r}; available: {', '.join(GENERATORS)}")
    settings.check()
    report = LlmRunReport()
    if dry_run:
        from rsgpt4v.instruct.llm.plan import plan_run

        report.lines = plan_run(records, settings).lines()
        return report
    if engine == "ray":
        refuse_on_cluster(settings)  # before the rules run and Ray starts
    output.parent.mkdir(parents=True, exist_ok=True)
    # beside the output: on a cluster, workers write the rules' shards beside their file
    with tempfile.TemporaryDirectory(prefix="rsgpt4v-instruct-", dir=output.parent) as folder:
        stage = LlmStage(records, output, settings)
        if generator == "both":
            source = (
                write_shard(records, settings.shard, Path(folder)) if settings.shard else records
            )
            stage.prepend = Path(folder) / "rules.jsonl"
            report.lines.append("rules: " + rules(source, stage.prepend))
        summary = run_stage(stage, engine, address)
    return finish_report(report, summary, settings)


def finish_report(report: LlmRunReport, summary: LlmSummary, settings: LlmSettings) -> LlmRunReport:
    """The run's summary lines; a stop is the run's error when fatal, else a warning."""
    report.lines += summary_lines(summary, settings)
    if summary.stopped:
        message = f"stopped: {summary.stopped}"
        if summary.fatal:
            report.error = message
        else:
            report.warnings.append(message)
    return report


def summary_lines(summary: LlmSummary, settings: LlmSettings) -> list[str]:
    per_task = ", ".join(f"{t} {n}" for t, n in sorted(summary.per_task.items())) or "none"
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(summary.statuses.items())) or "none"
    lines = [
        f"llm: {summary.instructions} instructions ({per_task}), {summary.qa_pairs} QA pairs "
        f"from {summary.records} records ({summary.records_complete} complete) → {summary.output}",
        f"requests: {statuses}; {summary.calls} API calls, {summary.cached} from the cache",
        f"tokens: {summary.prompt_tokens} in, {summary.completion_tokens} out; cost "
        f"${summary.cost_usd:.4f} (${summary.spent_usd:.4f} spent by this run) with "
        f"{settings.model}",
        f"generation log: {summary.log}",
    ]
    if settings.budget_usd is not None and summary.earlier_usd:
        lines.append(
            f"budget: ${summary.earlier_usd + summary.spent_usd:.4f} of "
            f"${settings.budget_usd:.4f} spent on this output over all its runs"
        )
    if summary.batches:
        lines.append(f"batches: {', '.join(summary.batches)}")
    return lines
