"""``--batch``: the passes through the OpenAI Batch API (half price, answers within 24 h).

The hierarchy needs one round per pass: each round walks the records, collects every request
whose reply is not cached yet (a record's later pass only once its earlier ones are answered),
writes them as JSONL files (``custom_id`` = the request key, at most 50,000 lines and 150 MB per
file), uploads, submits, polls and ingests the output and error files into the same cache as the
synchronous path. Each submitted batch is recorded in the cache before it is polled, so a restarted
run polls its open batches and never submits the same work twice. The output is then written
from the cache exactly as a synchronous run writes it. A reply whose output line reports no usage
is charged the request's worst-case estimate, as on the synchronous path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from functools import partial

from rsgpt4v.errors import RsgptError
from rsgpt4v.instruct.llm.cache import ReplyCache
from rsgpt4v.instruct.llm.engine import PendingRequest, Requester, reply_of, usage_of
from rsgpt4v.instruct.llm.passes import PASSES, response_format
from rsgpt4v.instruct.llm.prepare import Preparer, pool_size
from rsgpt4v.instruct.llm.pricing import Usage
from rsgpt4v.instruct.llm.record_runs import (
    RecordGenerator,
    Run,
    in_flight,
    make_client,
    run_records,
    shard_records,
)
from rsgpt4v.schema import Record, read_jsonl

MAX_LINES = 50_000
MAX_BYTES = 150 * 1024**2
TERMINAL = ("completed", "failed", "expired", "cancelled")


def run_batches(run: Run) -> None:
    """Fill the cache through batches, one round per pass; ``run.summary`` gets batch ids and
    spend, and the budget ``run.ledger`` (an output's, see generate.ledger_of) what each reply
    cost."""
    asyncio.run(_run(run))


async def _run(run: Run) -> None:
    import openai

    settings, cache, summary = run.settings, run.cache, run.summary
    client = make_client(settings, run.key)
    preparer = Preparer(settings, pool_size(settings, run.records_path))
    try:
        finish = partial(_finish, client, cache, run.prices, settings, ledger=run.ledger)
        for open_batch, entries in cache.open_batches():
            summary.spent_usd += await finish(open_batch, entries)
        for _ in settings.passes:
            requester = Requester(settings, cache, run.prices, None, run.redact, mode="collect")
            requester.vocabulary = run.vocabulary
            records = shard_records(read_jsonl(run.records_path, Record), settings.shard)
            generator = RecordGenerator(settings, requester, preparer)
            await run_records(records, generator, lambda result: None, in_flight(settings))
            pending = list({p.key: p for p in requester.pending}.values())
            if not pending:
                break
            spent = summary.earlier_usd + summary.spent_usd
            pending, stopped = _within_budget(pending, settings.budget_usd, spent)
            submitted = []
            for chunk in _chunks(pending, requester.format_mode):
                batch_id = await _submit(client, cache, chunk, requester.format_mode)
                summary.batches.append(batch_id)
                submitted.append((batch_id, [_entry(p) for p in chunk]))
            for batch_id, entries in submitted:
                summary.spent_usd += await finish(batch_id, entries)
            if stopped:
                summary.stopped = stopped
                break
    except openai.APIError as error:
        raise RsgptError(run.redact(f"batch API error: {error}")[:500]) from None
    finally:
        preparer.__exit__()
        await client.close()


def _within_budget(
    pending: list[PendingRequest], budget: float | None, spent: float
) -> tuple[list[PendingRequest], str | None]:
    """The requests whose estimated cost fits what is left of the budget, and why it stopped."""
    if budget is None:
        return pending, None
    kept, total = [], spent
    for request in pending:
        if total + request.estimate_usd > budget:
            return kept, (
                f"budget cap reached: {len(pending) - len(kept)} requests not submitted "
                f"(${spent:.4f} spent before this round, ${budget:.4f} allowed)"
            )
        kept.append(request)
        total += request.estimate_usd
    return kept, None


def _line(request: PendingRequest, mode: str) -> str:
    body = request.body | {"response_format": response_format(PASSES[request.pass_name], mode)}
    item = {"custom_id": request.key, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(item, ensure_ascii=False) + "\n"


def _chunks(pending: list[PendingRequest], mode: str) -> Iterator[list[PendingRequest]]:
    """Requests in groups that fit one batch file (line count and bytes)."""
    chunk, size = [], 0
    for request in pending:
        length = len(_line(request, mode).encode("utf-8"))
        if chunk and (len(chunk) >= MAX_LINES or size + length > MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(request)
        size += length
    if chunk:
        yield chunk


async def _submit(client, cache: ReplyCache, chunk: list[PendingRequest], mode: str) -> str:
    data = "".join(_line(request, mode) for request in chunk).encode("utf-8")
    uploaded = await client.files.create(file=("rsgpt4v-batch.jsonl", data), purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    entries = [_entry(p) for p in chunk]
    cache.add_batch(batch.id, hashlib.sha256(data).hexdigest(), entries)
    return batch.id


def _entry(request: PendingRequest) -> list:
    """A manifest line: key, record, pass and the worst-case cost (charged if no usage comes)."""
    return [request.key, request.record_id, request.pass_name, request.estimate_usd]


async def _finish(
    client, cache, prices, settings, batch_id: str, entries, ledger: str | None = None
) -> float:
    """Poll a batch to its end and store its replies; returns what they cost."""
    batch = await client.batches.retrieve(batch_id)
    while batch.status not in TERMINAL:
        await asyncio.sleep(settings.poll_interval_s)
        batch = await client.batches.retrieve(batch_id)
    known = {entry[0]: entry for entry in entries}
    spent = 0.0
    if batch.output_file_id:
        content = await client.files.content(batch.output_file_id)
        for line in content.text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            entry = known.get(item.get("custom_id"))
            response = item.get("response") or {}
            if entry is None or response.get("status_code") != 200:
                continue  # not ours, or failed: the request stays uncached and is asked again
            completion = response["body"]
            reply, usage = reply_of(completion), usage_of(completion)
            if usage is None:  # manifests written before estimates were kept charge 0
                usage, cost = Usage(), float(entry[3]) if len(entry) > 3 else 0.0
                reply["usage_estimated"] = True
            else:
                cost = prices.cost(settings.model, usage, batch=True)
            spent += cost
            cache.put(
                entry[0],
                record_id=entry[1],
                pass_name=entry[2],
                model=settings.model,
                reply=reply,
                usage=usage,
                cost_usd=cost,
                via="batch",
                charge_to=ledger,
            )
    cache.close_batch(batch_id, batch.status)
    return spent
