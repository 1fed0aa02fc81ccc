"""The LLM passes as a stage (:mod:`rsgpt4v.engines.stage`), run by either engine; either way the
output is the file of one local run.

On the local engine the run is one unit writing straight to the output: the run's own
``--shard`` (or every record), its reply cache, the output's budget ledger, ``--batch``, and the
rules' instructions first for ``--generator both``. On a cluster (``--engine ray``), unit I of N
is that run with ``shard=(I, N)`` into the run's shard folder: it reads the whole records file
(the prompts' class vocabulary is the whole input's) and keeps the records whose id hashes to I.
The local run's guarantees carry over:

- one reply cache for every unit (an absolute path, on shared storage on a cluster): a rerun
  after a lost worker or a lost driver answers finished requests from it and pays nothing twice;
  on a cluster of several nodes, where SQLite cannot be shared, one cache per shard, seeded
  from and folded back into that one (:mod:`rsgpt4v.instruct.llm.shard_caches`);
- ``--budget-usd`` is one cap for the whole run: every unit reserves and settles through one
  shared :class:`~rsgpt4v.instruct.llm.budget.BudgetLedger` (a request that does not fit waits
  for the calls in flight anywhere to settle); it covers that run only;
- instructions and generation logs are merged back into the records' order, the rules' first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v.engines.merge import input_positions, merge_in_input_order
from rsgpt4v.engines.shards import shard_path
from rsgpt4v.engines.stage import Counts, FanOut, Progress, Unit, UnitOutputs, UnitRun
from rsgpt4v.errors import InputError
from rsgpt4v.instruct.llm.budget import BudgetLedger, SharedBudget
from rsgpt4v.instruct.llm.generate import (
    LlmSummary,
    cache_of,
    generate_llm_instructions,
    log_path_of,
)
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.instruct.llm.shard_caches import fold_shard_caches, seed_shard_caches, shard_cache

#: Hash shards per CPU of the cluster: a few, so a slow shard does not hold up the end.
SHARDS_PER_CPU = 2
#: Settings a unit on a cluster gets as absolute paths (workers on other nodes, other folders).
_PATHS = ("cache_dir", "image_root", "prices")
_SUMMED = (
    "records",
    "records_complete",
    "instructions",
    "qa_pairs",
    "calls",
    "cached",
    "spent_usd",
    "earlier_usd",
    "cost_usd",
    "prompt_tokens",
    "completion_tokens",
)


@dataclass
class LlmStage:
    """The LLM instructions of ``records`` written to ``output``, its generation log beside.

    ``prepend``: instructions written first (the rules' for ``--generator both``). On a cluster
    only: ``shards`` hash shards (default :data:`SHARDS_PER_CPU` per CPU), ``cache_per_shard``
    (default: on a cluster of several nodes) and ``after_shard(index)``, run in the worker after
    its shard is written (tests: a worker that dies there).
    """

    records: Path
    output: Path
    settings: LlmSettings
    prepend: Path | None = None
    shards: int | None = None
    cache_per_shard: bool | None = None
    after_shard: Callable[[int], None] | None = None
    #: The run's one budget on a cluster (made by :meth:`units`, called by every unit).
    ledger: Any = field(default=None, init=False, repr=False)

    @property
    def description(self) -> str:
        return "instruct --generator llm"

    @property
    def shards_beside(self) -> Path:
        return self.output

    def units(self, fan_out: FanOut | None) -> list[Unit]:
        cache = cache_of(self.output, self.settings).resolve()
        fold_shard_caches(cache)  # left by a fanned-out run that failed: its replies are paid
        if fan_out is None:
            return [{"shard": None}]
        refuse_on_cluster(self.settings)
        count = self.shards or fan_out.workers * SHARDS_PER_CPU
        per_shard = fan_out.nodes > 1 if self.cache_per_shard is None else self.cache_per_shard
        if per_shard:
            seed_shard_caches(cache, count)
        self.ledger = self._share_budget(fan_out)
        common = {
            "records": _absolute(self.records),
            "image_root": _absolute(self.settings.image_root),
            "prices": _absolute(self.settings.prices),
        }
        return [
            common
            | {
                "shard": [index, count],
                "output": str(shard_path(fan_out.folder, index, "llm")),
                "cache_dir": str(shard_cache(cache, index, count) if per_shard else cache),
            }
            for index in range(count)
        ]

    def _share_budget(self, fan_out: FanOut) -> Any:
        """One ledger for ``--budget-usd`` that every unit reserves and settles through."""
        settings = self.settings
        if settings.budget_usd is None:
            return None
        return fan_out.share(BudgetLedger, settings.budget_usd, _patience(settings))

    def run_unit(self, unit: Unit, progress: Progress | None) -> UnitRun:
        yield from ()  # a unit writes its instructions and log itself
        if unit["shard"] is None:  # the local engine: the whole run, straight to the output
            summary = generate_llm_instructions(
                self.records, self.output, self.settings, prepend=self.prepend
            )
            return _counts(summary)
        index, count = unit["shard"]
        paths = {name: unit[name] and Path(unit[name]) for name in _PATHS}
        settings = self.settings.model_copy(update=paths | {"shard": (index, count)})
        budget = SharedBudget(self.ledger) if self.ledger is not None else None
        summary = generate_llm_instructions(
            unit["records"], unit["output"], settings, budget=budget
        )
        if self.after_shard is not None:
            self.after_shard(index)
        return _counts(summary) | {"files": [str(summary.output), str(summary.log)]}

    def finish(self, outputs: UnitOutputs) -> LlmSummary:
        counts = outputs.counts
        summary = _summed(counts, self.output)
        files = [unit["files"] for unit in counts if "files" in unit]
        if files:  # a fanned-out run: its shards, back in the records' order
            fold_shard_caches(cache_of(self.output, self.settings).resolve())
            positions = input_positions(self.records)
            instructions = [shard for shard, _ in files]
            merge_in_input_order(instructions, self.output, positions, first=self.prepend)
            merge_in_input_order([log for _, log in files], summary.log, positions)
        return summary


def refuse_on_cluster(settings: LlmSettings) -> None:
    """What a fanned-out run cannot do: ``--shard`` by hand, ``--batch``."""
    if settings.shard is not None:
        raise InputError("--shard splits the work by hand; --engine ray splits it itself")
    if settings.batch:
        raise InputError("--batch runs on OpenAI's side already: use it with --engine local")


def _patience(settings: LlmSettings) -> float:
    """How long a request waits for a reservation that never settles (its worker died):
    longer than any call with its retries can take."""
    return settings.timeout_s * (settings.max_retries + 1) + 60.0


def _absolute(path: str | Path | None) -> str | None:
    """A path as workers see it from any folder or node (on shared storage); None: not set."""
    return str(Path(path).resolve()) if path is not None else None


def _counts(summary: LlmSummary) -> Counts:
    """A unit's summary as JSON, less its files (the driver names the run's own)."""
    return {name: value for name, value in vars(summary).items() if name not in ("output", "log")}


def _summed(counts: list[Counts], output: Path) -> LlmSummary:
    """The run's summary: every unit's added up."""
    summary = LlmSummary(output=output, log=log_path_of(output))
    for unit in counts:
        for name in _SUMMED:
            setattr(summary, name, getattr(summary, name) + unit[name])
        summary.statuses.update(unit["statuses"])
        summary.per_task.update(unit["per_task"])
        summary.batches += unit["batches"]
        summary.stopped = summary.stopped or unit["stopped"]
        summary.fatal = summary.fatal or unit["fatal"]
    return summary
