"""Benchmark: LLM generation throughput and tokens per QA pair, against the fake OpenAI server.

The server of the test suite (``tests/fake_openai_server.py``) runs in its own process with a
fixed latency per chat call, so the client's work is measured alone. Two figures:

1. Throughput: ``generate_llm_instructions`` (all three passes, fresh cache) at concurrency C
   against a server answering in L seconds; the ideal is C / L requests per second. Target: at
   least 90% of it. As a baseline in the same run, the bare SDK (the same client, concurrency
   and request bodies, no engine) shows what the machine allows: on a loaded machine neither
   reaches the ideal, and the engine / bare-SDK ratio is the engine's own overhead. ``--repeat``
   interleaves several engine and baseline runs and reports the medians (a shared machine's
   speed moves between runs).
2. Tokens per generated QA pair: the hierarchical design (one local request describes every
   object and relation, one global and one multi-turn request per record) against one request per
   question (the same image and object table, asking each of the same questions alone), both
   from the server's reported usage in the same run. Target: at least 3x fewer.

Records are DOTA-like: 128 px images with 8-12 labelled objects each.

``--shards N`` also runs the engine as N ``--shard I/N`` processes side by side (the same total
concurrency, one shared cache), the way ``instruct --shard`` or ``--engine ray`` uses a
machine's cores; a single process is bounded by one core.

    python bench/llm.py [--records 512] [--concurrency 64] [--latency 0.2] [--repeat 1] [--shards N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsgpt4v.instruct.attributes import object_facts  # noqa: E402
from rsgpt4v.instruct.llm.generate import generate_llm_instructions  # noqa: E402
from rsgpt4v.instruct.llm.images import render_image  # noqa: E402
from rsgpt4v.instruct.llm.passes import (  # noqa: E402
    PASSES,
    SINGLE_QUESTION,
    Earlier,
    RecordContext,
    build_messages,
    response_format,
)
from rsgpt4v.instruct.llm.record_runs import make_client  # noqa: E402
from rsgpt4v.instruct.llm.settings import LlmSettings  # noqa: E402
from rsgpt4v.schema import Instruction, Record, read_jsonl  # noqa: E402
from tests.llm_fixtures import make_llm_records  # noqa: E402

KEY_ENV = "RSGPT4V_BENCH_KEY"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def throughput(
    records: Path,
    base_url: str,
    concurrency: int,
    folder: Path,
    tag: str,
    shard: tuple[int, int] | None = None,
):
    settings = LlmSettings(
        model="gpt-4o",
        base_url=base_url,
        api_key_env=KEY_ENV,
        image_root=records.parent,
        cache_dir=folder / f"cache-{tag}",
        concurrency=concurrency,
        timeout_s=30.0,
        shard=shard,
    )
    output = folder / (f"out-{tag}.jsonl" if shard is None else f"out-{tag}-{shard[0]}.jsonl")
    start, cpu = time.perf_counter(), time.process_time()
    summary = generate_llm_instructions(records, output, settings)
    return summary, time.perf_counter() - start, time.process_time() - cpu


def _shard_process(records, warm, base_url, concurrency, folder, tag, shard, ready, results):
    """One ``--shard I/N`` run in its own process, started when every shard is warm."""
    throughput(warm, base_url, concurrency, folder, f"warm-{tag}", shard)  # imports, connections
    ready.wait()
    summary, _, cpu = throughput(records, base_url, concurrency, folder, tag, shard)
    results.put((summary.calls, time.time(), cpu))


def sharded_throughput(
    records: Path, warm: Path, base_url: str, concurrency: int, folder: Path, shards: int
) -> tuple[int, float, float]:
    """(requests, wall seconds, CPU seconds) of ``shards`` engine processes run side by side.

    Each runs ``--shard I/N`` with an equal part of the concurrency and one shared reply cache,
    as ``instruct --shard`` runs (or the Ray engine's tasks) on one machine: the engine's way to
    use more than one core. The clock starts when every process has imported and connected.
    """
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(shards + 1), context.Queue()
    tag = f"shards{shards}"
    common = (records, warm, base_url, concurrency // shards, folder, tag)
    processes = [
        context.Process(target=_shard_process, args=(*common, (i, shards), ready, results))
        for i in range(shards)
    ]
    for process in processes:
        process.start()
    ready.wait()
    start = time.time()
    finished = [results.get() for _ in processes]
    for process in processes:
        process.join()
    requests = sum(calls for calls, _, _ in finished)
    return requests, max(end for _, end, _ in finished) - start, sum(c for *_, c in finished)


async def bare_sdk(
    records: Path, base_url: str, concurrency: int, requests: int
) -> tuple[float, float]:
    """Requests per second and CPU seconds per request of the SDK alone: the engine's client,
    a local-pass body each time."""
    settings = LlmSettings(model="gpt-4o", base_url=base_url, concurrency=concurrency)
    client = make_client(settings, os.environ[KEY_ENV])
    record = next(read_jsonl(records, Record))
    image = render_image(records.parent / record.image.path, "low")
    context = RecordContext.of(record, object_facts(record, records.parent))
    body = {
        "model": "gpt-4o",
        "messages": build_messages(PASSES["local"], context, Earlier(), image),
        "max_tokens": 1000,
        "response_format": response_format(PASSES["local"], "json_schema"),
    }
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await client.post("/chat/completions", body=body, cast_to=object)

    await asyncio.gather(*(one() for _ in range(concurrency)))  # connections up
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    return requests / seconds, cpu / requests


async def one_request_per_question(
    records: Path, instructions: Path, base_url: str, concurrency: int
) -> tuple[int, int]:
    """Ask every question of the hierarchical output alone; (tokens, QA pairs)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=os.environ[KEY_ENV], base_url=base_url, timeout=30.0)
    by_record: dict[str, list[str]] = {}
    for instruction in read_jsonl(instructions, Instruction):
        questions = [m.content.removeprefix("<image>\n") for m in instruction.messages[::2]]
        by_record.setdefault(instruction.record_id, []).extend(questions)
    slots = asyncio.Semaphore(concurrency)
    totals = [0, 0]

    async def ask(messages: list[dict]) -> None:
        async with slots:
            response = await client.chat.completions.create(
                model="gpt-4o",
                messages=messages,
                max_tokens=SINGLE_QUESTION.max_tokens(0),
                response_format=response_format(SINGLE_QUESTION, "json_schema"),
            )
        totals[0] += response.usage.prompt_tokens + response.usage.completion_tokens
        totals[1] += 1

    tasks = []
    for record in read_jsonl(records, Record):
        image = render_image(records.parent / record.image.path, "low")
        context = RecordContext.of(record, object_facts(record, records.parent))
        for question in by_record.get(record.id, []):
            messages = build_messages(SINGLE_QUESTION, context, Earlier(), image, question=question)
            tasks.append(ask(messages))
    await asyncio.gather(*tasks)
    await client.close()
    return totals[0], totals[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="engine runs (the median is the result)"
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="also run the engine as this many --shard processes side by side (the same total "
        "concurrency), after the single-process runs",
    )
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key")
    process, base_url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            shape = {"size": 128, "objects": (8, 12)}
            records = make_llm_records(folder / "data", args.records, **shape)
            warm = make_llm_records(folder / "warm", 16, seed=1, **shape)
            throughput(warm, base_url, args.concurrency, folder, "warm")  # imports, connections
            ideal = args.concurrency / args.latency
            runs = []  # (engine req/s, engine CPU s per request, bare SDK req/s, its CPU)
            for index in range(args.repeat):  # interleaved: a noisy machine hits both alike
                tag = "run" if index == 0 else f"run{index}"
                summary, seconds, cpu = throughput(records, base_url, args.concurrency, folder, tag)
                requests = summary.calls
                sdk, sdk_cpu = asyncio.run(bare_sdk(records, base_url, args.concurrency, requests))
                runs.append((requests / seconds, cpu / requests, sdk, sdk_cpu))
            print(f"server latency {args.latency:.3f} s, concurrency {args.concurrency}")
            print(f"ideal: {ideal:.1f} req/s")
            print(f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
            for index, (rate, cpu, sdk, sdk_cpu) in enumerate(runs):
                print(
                    f"run {index + 1}: bare SDK (baseline) {sdk:.1f} req/s = "
                    f"{sdk / ideal:.3f} of ideal, {1000 * sdk_cpu:.2f} ms CPU per request; "
                    f"engine {rate:.1f} req/s = {rate / ideal:.3f} of ideal, "
                    f"{rate / sdk:.3f} of the bare SDK, {1000 * cpu:.2f} ms CPU per request "
                    "in the event-loop process"
                )
            rate = statistics.median(run[0] for run in runs)
            sdk = statistics.median(run[2] for run in runs)
            print(
                f"engine: {rate:.1f} req/s = {rate / ideal:.3f} of ideal (target >= 0.90), "
                f"{rate / sdk:.3f} of the bare SDK"
                + (f"; medians of {len(runs)} runs" if len(runs) > 1 else "")
            )
            if args.shards > 1:
                calls, seconds, cpu = sharded_throughput(
                    records, warm, base_url, args.concurrency, folder, args.shards
                )
                print(
                    f"engine in {args.shards} shard processes: {calls / seconds:.1f} req/s = "
                    f"{calls / seconds / ideal:.3f} of ideal, "
                    f"{1000 * cpu / calls:.2f} ms CPU per request (all shards)"
                )
            hierarchical = summary.prompt_tokens + summary.completion_tokens
            per_pair = hierarchical / summary.qa_pairs
            print(
                f"hierarchical: {requests} requests, {summary.qa_pairs} QA pairs, "
                f"{hierarchical} tokens = {per_pair:.1f} tokens per QA pair"
            )
            single_tokens, single_pairs = asyncio.run(
                one_request_per_question(
                    records, folder / "out-run.jsonl", base_url, args.concurrency
                )
            )
            single_per_pair = single_tokens / single_pairs
            print(
                f"one request per question: {single_pairs} requests, {single_pairs} QA pairs, "
                f"{single_tokens} tokens = {single_per_pair:.1f} tokens per QA pair"
            )
            print(
                f"tokens per QA pair, one-per-question / hierarchical: "
                f"{single_per_pair / per_pair:.2f}x (target >= 3x)"
            )
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
