"""Running the passes over records: one record's requests in pass order, many records in
flight, the client they share, and which records a ``--shard`` run takes. Used by the
synchronous run (:mod:`generate`) and the Batch API run (:mod:`batch`) alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsgpt4v.engines.shards import shard_of
from rsgpt4v.instruct.llm.cache import ReplyCache
from rsgpt4v.instruct.llm.engine import Outcome, Requester
from rsgpt4v.instruct.llm.passes import PASSES, Earlier
from rsgpt4v.instruct.llm.prepare import Preparer
from rsgpt4v.instruct.llm.pricing import PriceTable
from rsgpt4v.instruct.llm.settings import LlmSettings, Redactor
from rsgpt4v.instruct.llm.to_instructions import INSTRUCTIONS_OF
from rsgpt4v.schema import Instruction, Record


@dataclass
class RecordResult:
    record: Record
    outcomes: list[Outcome]
    instructions: list[Instruction]


def shard_records(records: Iterable[Record], shard: tuple[int, int] | None) -> Iterator[Record]:
    for record in records:
        if shard is None or shard_of(record.id, shard[1]) == shard[0]:
            yield record


class RecordGenerator:
    """Runs the passes of one record: image, facts, then each pass fed with the earlier ones."""

    def __init__(
        self, settings: LlmSettings, requester: Requester, preparer: Preparer | None = None
    ) -> None:
        self.settings = settings
        self.requester = requester
        self.preparer = preparer or Preparer(settings)

    async def generate(self, record: Record) -> RecordResult:
        prepared = await self.preparer(record)
        if isinstance(prepared, str):
            failed = Outcome(self.settings.passes[0], "failed", f"image: {prepared}")
            return RecordResult(record, [failed], [])
        image, context, crops = prepared.image, prepared.context, prepared.crops
        earlier = Earlier()
        outcomes, instructions = [], []
        for name in self.settings.passes:
            if name != "local" and "local" in self.settings.passes and earlier.local is None:
                break  # later passes build on accepted local notes
            outcome = await self.requester.run(PASSES[name], context, earlier, image, crops)
            outcomes.append(outcome)
            if outcome.status != "ok":
                if outcome.status in ("unsent", "failed"):
                    break
                continue
            assert outcome.reply is not None and outcome.provenance is not None
            make = INSTRUCTIONS_OF[name]
            instructions += make(record, outcome.reply, outcome.provenance, self.settings.seed)
            if name == "local":
                earlier.local = outcome.reply  # type: ignore[assignment]
            elif name == "global":
                earlier.description = outcome.reply.description  # type: ignore[attr-defined]
        return RecordResult(record, outcomes, instructions)


async def run_records(
    records: Iterable[Record],
    generator: RecordGenerator,
    on_result: Callable[[RecordResult], None],
    workers: int,
) -> None:
    """Feed records to ``workers`` tasks; ``on_result`` gets results in input order."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=2 * workers)
    done: dict[int, RecordResult] = {}
    next_index = 0

    async def produce() -> None:
        for index, record in enumerate(records):
            if generator.requester.stopped:
                break
            await queue.put((index, record))
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        nonlocal next_index
        while (item := await queue.get()) is not None:
            index, record = item
            done[index] = await generator.generate(record)
            while next_index in done:
                on_result(done.pop(next_index))
                next_index += 1

    await asyncio.gather(produce(), *(work() for _ in range(workers)))


def make_client(settings: LlmSettings, key: str):
    """One shared client, its connection pool sized to the concurrency.

    The SDK's aiohttp transport (``openai[aiohttp]``) costs half the CPU per request of its
    default httpx one, which matters at hundreds of requests per second; the httpx transport is
    used where aiohttp is not installed.
    """
    import openai
    from openai._constants import DEFAULT_CONNECTION_LIMITS

    size = settings.concurrency + 4
    limits = type(DEFAULT_CONNECTION_LIMITS)(max_connections=size, max_keepalive_connections=size)
    try:
        http_client = openai.DefaultAioHttpClient(limits=limits)
    except (AttributeError, RuntimeError, ImportError):  # older SDK, or aiohttp missing
        http_client = openai.DefaultAsyncHttpxClient(limits=limits)
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=settings.base_url,
        max_retries=settings.max_retries,
        timeout=settings.timeout_s,
        http_client=http_client,
    )


def in_flight(settings: LlmSettings) -> int:
    """Workers beyond the request slots keep the slots busy while images are rendered."""
    return settings.concurrency + max(2, settings.concurrency // 8)


@dataclass
class Run:
    """What the parts of one LLM run share: its input, settings, reply cache, prices, key (and
    its redactor), the dataset vocabularies, the summary it fills and the budget ledger."""

    records_path: str | Path
    settings: LlmSettings
    cache: ReplyCache
    prices: PriceTable
    key: str
    redact: Redactor
    vocabulary: dict[str, tuple[str, ...]]
    summary: Any  # rsgpt4v.instruct.llm.generate.LlmSummary
    ledger: str | None = None
