"""``instruct --generator llm --engine ray``: the LLM passes fanned out over hash shards.

Task I of N runs :func:`rsgpt4v.instruct.llm.generate.generate_llm_instructions` with
``shard=(I, N)``: the local engine's ``--shard I/N`` run, reading the whole records file (the
prompts' class vocabulary is the whole input's) and keeping the records whose id hashes to I.
The engine's guarantees carry over:

- one reply cache for every task (an absolute path, on shared storage on a cluster): a rerun
  after a lost worker or a lost driver answers finished requests from it and pays nothing twice;
  on a cluster of several nodes, where SQLite cannot be shared, one cache per shard, seeded
  from and folded back into that one (:mod:`rsgpt4v.scale.shard_caches`);
- ``--budget-usd`` is one cap for the whole run: every task reserves and settles through one
  ledger actor (the engine's own :class:`~rsgpt4v.instruct.llm.budget.Budget`, so a request
  that does not fit waits for the calls in flight anywhere to settle);
- instructions and generation logs are merged back into the records' order, so the output is
  the file of one local run whatever N.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

from rsgpt4v.errors import InputError
from rsgpt4v.instruct.llm.budget import Budget
from rsgpt4v.instruct.llm.command import (
    GENERATORS,
    LlmRunReport,
    finish_report,
    run_llm_instruct,
)
from rsgpt4v.instruct.llm.generate import (
    DEFAULT_CACHE_DIR,
    LlmSummary,
    generate_llm_instructions,
    log_path_of,
)
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.scale.merge import input_positions, merge_in_input_order
from rsgpt4v.scale.session import Unit, ray_session, run_units
from rsgpt4v.scale.shard_caches import fold_shard_caches, seed_shard_caches, shard_cache
from rsgpt4v.scale.shards import remove_shards, shard_path, shards_folder

#: Hash shards per CPU of the cluster: a few, so a slow shard does not hold up the end.
SHARDS_PER_CPU = 2
_SUMMED = ("records", "records_complete", "instructions", "qa_pairs", "calls", "cached")
_SUMMED_FLOATS = ("spent_usd", "cost_usd")
_SUMMED_TOKENS = ("prompt_tokens", "completion_tokens")


class BudgetLedger:
    """The run's one budget, held by a Ray actor; tasks reserve and settle through it.

    A reservation of a worker that died never settles; a request waits for it at most
    ``patience`` seconds (longer than any call can take) and then counts the cap as reached.
    """

    def __init__(self, limit: float, patience: float) -> None:
        self.budget = Budget(limit)
        self.patience = patience

    async def reserve(self, amount: float) -> bool:
        try:
            return await asyncio.wait_for(self.budget.reserve(amount), self.patience)
        except TimeoutError:
            return False

    async def settle(self, reserved: float, actual: float) -> None:
        await self.budget.settle(reserved, actual)

    def spent(self) -> float:
        return self.budget.spent


class SharedBudget:
    """What a task's requester sees in place of its own budget: the ledger, plus its own spend."""

    def __init__(self, ledger, limit: float | None) -> None:
        self.ledger, self.limit = ledger, limit
        self.spent = 0.0

    async def reserve(self, amount: float) -> bool:
        return await self.ledger.reserve.remote(amount)

    async def settle(self, reserved: float, actual: float) -> None:
        self.spent += actual
        await self.ledger.settle.remote(reserved, actual)


def _llm_unit(
    unit: Unit,
    *,
    records: str,
    settings: LlmSettings,
    ledger,
    folder: str,
    after_shard: Callable[[int], None] | None,
) -> dict:
    index, count = unit["index"], unit["count"]
    out = shard_path(folder, index, "raw")
    own = dataclasses.replace(settings, shard=(index, count))
    if unit["cache_per_shard"]:
        own.cache_dir = shard_cache(Path(settings.cache_dir), index, count)  # type: ignore[arg-type]
    budget = SharedBudget(ledger, settings.budget_usd) if ledger is not None else None
    summary = generate_llm_instructions(records, out, own, budget=budget)
    result = {  # both in input order: the engine writes records in the order it reads them
        "shard": str(out.replace(shard_path(folder, index))),
        "log": str(log_path_of(out).replace(shard_path(folder, index, "log"))),
        "statuses": summary.statuses,
        "per_task": summary.per_task,
        "stopped": summary.stopped,
        "fatal": summary.fatal,
    }
    for name in _SUMMED + _SUMMED_FLOATS + _SUMMED_TOKENS:
        result[name] = getattr(summary, name)
    if after_shard is not None:  # tests: a worker that dies after paying, before returning
        after_shard(index)
    return result


def generate_llm_ray(
    records_path: str | Path,
    output: str | Path,
    settings: LlmSettings,
    *,
    shards: int | None = None,
    address: str | None = None,
    prepend: Path | None = None,
    after_shard: Callable[[int], None] | None = None,
    cache_per_shard: bool | None = None,
) -> LlmSummary:
    """The LLM instructions of every record, generated on Ray; same output as one local run.

    ``prepend`` is an instructions file written first (the rules' for ``--generator both``).
    ``after_shard(index)`` runs in the worker after a shard is written (for failure tests).
    ``cache_per_shard`` gives each shard its own reply cache, folded into the main one at the
    end (:mod:`rsgpt4v.scale.shard_caches`); by default only on a cluster of several nodes.
    """
    if settings.shard is not None:
        raise InputError("--shard splits the work by hand; --engine ray splits it itself")
    if settings.batch:
        raise InputError("--batch runs on OpenAI's side already: use it with --engine local")
    output = Path(output)
    cache = Path(settings.cache_dir or output.parent / DEFAULT_CACHE_DIR).resolve()
    image_root = Path(settings.image_root).resolve() if settings.image_root else None
    settings = dataclasses.replace(settings, cache_dir=cache, image_root=image_root)
    folder = shards_folder(output)
    with ray_session(address) as ray:
        count = shards or max(1, int(ray.cluster_resources().get("CPU", 1)) * SHARDS_PER_CPU)
        if cache_per_shard is None:
            cache_per_shard = sum(node["Alive"] for node in ray.nodes()) > 1
        if cache_per_shard:
            seed_shard_caches(cache, count)
        ledger = _ledger(ray, settings)
        work = partial(
            _llm_unit,
            records=str(Path(records_path).resolve()),
            settings=settings,
            ledger=ledger,
            folder=str(folder),
            after_shard=after_shard,
        )
        try:
            units = [
                {"index": i, "count": count, "cache_per_shard": cache_per_shard}
                for i in range(count)
            ]
            results = run_units(units, work)
        finally:
            if ledger is not None:
                ray.kill(ledger)
            if cache_per_shard:
                fold_shard_caches(cache)
    summary = _summary(results, output)
    positions = input_positions(records_path)
    parts = [result["shard"] for result in results]
    merge_in_input_order(parts, output, positions, first=prepend)
    merge_in_input_order([result["log"] for result in results], summary.log, positions)
    remove_shards(folder)
    return summary


def _ledger(ray, settings: LlmSettings):
    if settings.budget_usd is None:
        return None
    patience = settings.timeout_s * (settings.max_retries + 1) + 60.0
    actor = ray.remote(num_cpus=0)(BudgetLedger)
    return actor.remote(settings.budget_usd, patience)


def _summary(results: list[dict], output: Path) -> LlmSummary:
    summary = LlmSummary(output=output, log=log_path_of(output))
    for result in results:
        for name in _SUMMED + _SUMMED_FLOATS + _SUMMED_TOKENS:
            setattr(summary, name, getattr(summary, name) + result[name])
        summary.statuses.update(Counter(result["statuses"]))
        summary.per_task.update(Counter(result["per_task"]))
        summary.stopped = summary.stopped or result["stopped"]
        summary.fatal = summary.fatal or result["fatal"]
    return summary


def run_llm_instruct_ray(
    generator: str,
    records: Path,
    output: Path,
    settings: LlmSettings,
    *,
    dry_run: bool,
    rules: Callable[[Path, Path], str],
    address: str | None = None,
) -> LlmRunReport:
    """:func:`rsgpt4v.instruct.llm.command.run_llm_instruct` with the LLM passes on Ray.

    ``rules(records, out)`` runs the rules stage (on Ray too when the command says so) for
    ``--generator both``; its instructions are merged into the output with the LLM ones.
    """
    if generator not in GENERATORS:
        raise InputError(f"unknown generator {generator!r}; available: {', '.join(GENERATORS)}")
    if dry_run:
        return run_llm_instruct(generator, records, output, settings, dry_run=True, rules=rules)
    report = LlmRunReport()
    with tempfile.TemporaryDirectory(prefix="rsgpt4v-instruct-", dir=output.parent) as folder:
        prepend = None
        if generator == "both":
            prepend = Path(folder) / "rules.jsonl"
            report.lines.append("rules: " + rules(records, prepend))
        summary = generate_llm_ray(records, output, settings, address=address, prepend=prepend)
    return finish_report(report, summary, settings)
