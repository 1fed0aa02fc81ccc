"""``instruct --generator llm``: records → instructions through the local → global → multi-turn
passes, with a generation log beside the output (one JSON row per request).

Records are read lazily and handed to a bounded pool of workers, one record at a time each, its
passes in order (each pass sees what the earlier ones wrote); at most ``concurrency`` requests are
in flight. Instructions are written in input order whatever order records finish in, so a resumed
run (all replies from the cache, no call) writes the same file.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.collector import fewer_collections, older_objects_frozen
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.instruct.llm.budget import Budget, SharedBudget
from rsgpt4v.instruct.llm.cache import ReplyCache
from rsgpt4v.instruct.llm.engine import Outcome, Requester
from rsgpt4v.instruct.llm.prepare import Preparer, pool_size
from rsgpt4v.instruct.llm.pricing import load_prices
from rsgpt4v.instruct.llm.record_runs import (
    RecordGenerator,
    RecordResult,
    Run,
    in_flight,
    make_client,
    run_records,
    shard_records,
)
from rsgpt4v.instruct.llm.settings import LlmSettings, Redactor, read_api_key
from rsgpt4v.instruct.llm.to_instructions import qa_pairs
from rsgpt4v.instruct.stage import check_partial_classes
from rsgpt4v.jsonfiles import decode_utf8
from rsgpt4v.paths import ImageRoot
from rsgpt4v.raster import gdal_env
from rsgpt4v.schema import JsonlWriter, Record, read_jsonl
from rsgpt4v.vocabulary import dataset_vocabulary

DEFAULT_CACHE_DIR = ".rsgpt4v-llm-cache"


@dataclass
class LlmSummary:
    output: Path
    log: Path
    records: int = 0
    records_complete: int = 0  # every pass answered (ok, parse_error, rejected or refused)
    instructions: int = 0
    qa_pairs: int = 0
    calls: int = 0  # API calls this run (a JSON-mode fallback counts twice)
    cached: int = 0  # requests answered from the cache
    statuses: Counter[str] = field(default_factory=Counter)
    per_task: Counter[str] = field(default_factory=Counter)
    spent_usd: float = 0.0  # paid by this run
    earlier_usd: float = 0.0  # paid for this output by earlier runs (the budget's ledger)
    cost_usd: float = 0.0  # of every reply used, cached ones included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stopped: str | None = None  # why the run stopped early
    fatal: bool = False  # stopped by an error (quota, credentials), not by the budget
    batches: list[str] = field(default_factory=list)


def log_row(result: RecordResult, outcome: Outcome) -> str:
    return json.dumps(
        {
            "record_id": result.record.id,
            "pass": outcome.pass_name,
            "status": outcome.status,
            "reason": outcome.reason,
            "request_hash": outcome.key or None,
            "cached": outcome.cached,
            "usage": outcome.usage.as_dict(),
            "usage_estimated": outcome.usage_estimated,
            "cost_usd": round(outcome.cost_usd, 8),
        },
        ensure_ascii=False,
    )


def log_path_of(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".jsonl") + ".generation.jsonl")


def ledger_of(output: Path) -> str:
    """The budget ledger of an output: its absolute path (the cap covers every run writing it)."""
    return str(Path(output).resolve())


def cache_of(output: str | Path, settings: LlmSettings) -> Path:
    """The reply cache folder of a run: ``--cache``, else one beside the output."""
    return settings.cache_dir or Path(output).parent / DEFAULT_CACHE_DIR


def generate_llm_instructions(
    records_path: str | Path,
    output: str | Path,
    settings: LlmSettings,
    *,
    prepend: Path | None = None,
    budget: Budget | SharedBudget | None = None,
    ledger: str | None = None,
) -> LlmSummary:
    """Write the LLM instructions of every record (of the shard) to output, and the log beside.

    ``prepend`` is a file of instructions (the rules' ones for ``--generator both``) copied first.
    ``budget`` is one shared by several runs (the tasks of a fanned-out run: a
    :class:`~rsgpt4v.instruct.llm.budget.SharedBudget`); by default ``settings.budget_usd`` caps
    what every run writing this output paid, this one included (the ledger in the reply cache).
    ``ledger`` names the ledger that paid replies are charged to when the budget is shared
    (default: none; else the output's own).
    """
    output = Path(output)
    _check(settings)
    prices = load_prices(settings.prices)
    if settings.budget_usd is not None and prices.price_of(settings.model) is None:
        raise RsgptError(
            f"--budget-usd needs a price for model {settings.model!r}: add it to a price table "
            "and pass it with --prices"
        )
    key = read_api_key(settings)
    redact = Redactor(key)
    vocabulary = dataset_vocabulary(records_path)
    check_partial_classes(settings.completeness, vocabulary, None)
    summary = LlmSummary(output=output, log=log_path_of(output))
    own_budget = budget is None
    if own_budget:
        ledger = ledger_of(output)
    with ReplyCache(cache_of(output, settings)) as cache:
        if own_budget:
            summary.earlier_usd = cache.charged(ledger_of(output))
        run = Run(records_path, settings, cache, prices, key, redact, vocabulary, summary, ledger)
        if settings.batch:
            from rsgpt4v.instruct.llm.batch import run_batches

            run_batches(run)
        if budget is None:
            budget = Budget(settings.budget_usd, summary.earlier_usd + summary.spent_usd)
        # The collector skips what the imports made and runs less often; GDAL keeps one
        # environment for every image read (rsgpt4v.raster.gdal_env).
        with older_objects_frozen(), fewer_collections(), gdal_env():
            asyncio.run(_generate(run, output, prepend, budget))
    return summary


async def _generate(run: Run, output: Path, prepend: Path | None, budget: Budget) -> None:
    settings, summary = run.settings, run.summary
    client = None if settings.batch else make_client(settings, run.key)
    mode = "cache_only" if settings.batch else "call"
    requester = Requester(
        settings, run.cache, run.prices, client, run.redact, mode, budget=budget, ledger=run.ledger
    )
    requester.vocabulary = run.vocabulary

    def on_result(result: RecordResult) -> None:
        summary.records += 1
        for outcome in result.outcomes:
            if outcome.status == "unsent":
                continue
            log.write_lines([log_row(result, outcome) + "\n"])
            summary.statuses[outcome.status] += 1
            summary.cached += outcome.cached
            summary.cost_usd += outcome.cost_usd
            summary.prompt_tokens += outcome.usage.prompt_tokens
            summary.completion_tokens += outcome.usage.completion_tokens
        answered = [o for o in result.outcomes if o.status not in ("unsent", "failed")]
        summary.records_complete += len(answered) == len(settings.passes)
        for instruction in result.instructions:
            writer.write(instruction)
            summary.per_task[instruction.task] += 1
        summary.qa_pairs += qa_pairs(result.instructions)

    records = shard_records(read_jsonl(run.records_path, Record), settings.shard)
    processes = pool_size(settings, run.records_path)
    try:
        with (
            Preparer(settings, processes) as preparer,
            JsonlWriter(output) as writer,
            JsonlWriter(summary.log) as log,
        ):
            generator = RecordGenerator(settings, requester, preparer)
            if prepend is not None:
                text = decode_utf8(prepend.read_bytes(), prepend)
                writer.write_lines(text.splitlines(keepends=True))
            await run_records(records, generator, on_result, in_flight(settings))
    finally:
        if client is not None:
            await client.close()
    summary.instructions = sum(summary.per_task.values())
    summary.calls += requester.calls
    summary.spent_usd += requester.budget.spent
    summary.stopped = summary.stopped or requester.stopped
    summary.fatal = summary.fatal or requester.fatal


def _check(settings: LlmSettings) -> None:
    settings.check()  # again: settings.model_copy(update=...) does not validate what it changes
    if settings.image_root is None:
        raise InputError("--image-root is needed with --generator llm: the model sees the images")
    ImageRoot(settings.image_root)  # a folder, or an error naming it
