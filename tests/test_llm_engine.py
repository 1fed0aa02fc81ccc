"""LLM generation end to end: the real openai client against the fake server in this suite."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from rsgpt4v.instruct.llm.generate import generate_llm_instructions
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.schema import Instruction, read_jsonl
from tests.fake_openai_server import FakeOpenAIServer
from tests.llm_fixtures import make_llm_records

KEY = "sk-rsgpt4v-TEST-9f8e7d6c5b4a3210fedcba"
RECORDS = 6
PASSES = 3


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_llm_records(tmp_path_factory.mktemp("llm_records"), RECORDS)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSGPT4V_TEST_KEY", KEY)


def settings(server: FakeOpenAIServer, records: Path, cache: Path, **changes) -> LlmSettings:
    values = dict(
        model="gpt-4o",
        base_url=server.base_url,
        api_key_env="RSGPT4V_TEST_KEY",
        image_root=records.parent,
        cache_dir=cache,
        concurrency=4,
        max_retries=6,
        timeout_s=0.5,
        poll_interval_s=0.01,
    )
    return LlmSettings(**(values | changes))


def log_rows(summary) -> list[dict]:
    return [json.loads(line) for line in summary.log.read_text().splitlines()]


def test_a_run_writes_instructions_with_provenance_and_a_log_row_per_request(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    summary = generate_llm_instructions(
        records, tmp_path / "out.jsonl", settings(server, records, tmp_path / "cache")
    )
    assert summary.records == summary.records_complete == RECORDS
    assert server.calls["chat"] == summary.calls == RECORDS * PASSES
    body = server.bodies[0]
    assert body["response_format"]["type"] == "json_schema"
    parts = body["messages"][1]["content"]
    assert parts[-1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert server.authorizations == {f"Bearer {KEY}"}
    instructions = list(read_jsonl(tmp_path / "out.jsonl", Instruction))
    assert {i.task for i in instructions} == {
        "llm_object_detail", "llm_relation", "llm_detailed_description", "llm_multi_turn"
    }  # fmt: skip
    rows = log_rows(summary)
    assert len(rows) == RECORDS * PASSES and {r["status"] for r in rows} == {"ok"}
    hashes = {r["request_hash"] for r in rows}
    for instruction in instructions:
        source = instruction.source.model_dump()
        assert source["generator"] == "llm" and source["model"] == "gpt-4o"
        assert source["prompt_version"].endswith("@2+system@3")
        assert source["request_hash"] in hashes and source["usage"]["prompt_tokens"] > 0
        refs = {r for m in instruction.messages for r in _refs(m.content)}
        assert refs == set(instruction.regions)  # boxes come from the labels of the refs
    assert summary.cost_usd == pytest.approx(sum(r["cost_usd"] for r in rows))


def _refs(text: str) -> set[str]:
    import re

    return set(re.findall(r"<ref:(\d+)>", text))


def test_a_rerun_makes_no_call_and_writes_the_same_file(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    config = settings(server, records, tmp_path / "cache")
    generate_llm_instructions(records, tmp_path / "first.jsonl", config)
    calls = server.calls["chat"]
    summary = generate_llm_instructions(records, tmp_path / "second.jsonl", config)
    assert server.calls["chat"] == calls and summary.calls == 0
    assert summary.cached == RECORDS * PASSES and summary.spent_usd == 0
    assert (tmp_path / "first.jsonl").read_bytes() == (tmp_path / "second.jsonl").read_bytes()


def test_with_20_percent_faults_every_record_still_completes(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.inject_faults(0.2, seed=1)
    server.timeout_delay = 1.0
    summary = generate_llm_instructions(
        records,
        tmp_path / "out.jsonl",
        settings(server, records, tmp_path / "cache", timeout_s=0.3),
    )
    faults = sum(server.calls[f"fault_{kind}"] for kind in ("429", "500", "timeout"))
    assert faults > 0
    assert summary.records_complete == RECORDS and summary.statuses == {"ok": RECORDS * PASSES}


def test_malformed_and_contradicting_replies_are_kept_with_their_status(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    def hook(pass_name: str, reply: dict, body: dict) -> str | None:
        text = body["messages"][1]["content"][0]["text"]
        if pass_name == "local" and '"id":3' in text:  # records with 4 objects
            return '{"objects": [{"id": 0, "attri'
        if pass_name == "global":
            return json.dumps({"description": "A plane <ref:42> and twelve ships."})
        return None

    server.reply_hook = hook
    config = settings(server, records, tmp_path / "cache")
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    rows = log_rows(summary)
    broken = [r for r in rows if r["status"] == "parse_error"]
    assert broken and all(r["pass"] == "local" and "not JSON" in r["reason"] for r in broken)
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert rejected and all("object id 42" in r["reason"] for r in rejected)
    with sqlite3.connect(config.cache_dir / "llm_cache.sqlite") as db:
        raw = db.execute("SELECT reply FROM replies WHERE key = ?", (broken[0]["request_hash"],))
        assert '"attri' in json.loads(raw.fetchone()[0])["content"]  # the paid reply is kept
    tasks = {i.task for i in read_jsonl(tmp_path / "out.jsonl", Instruction)}
    assert "llm_detailed_description" not in tasks and "llm_object_detail" in tasks
    calls = server.calls["chat"]
    again = generate_llm_instructions(records, tmp_path / "again.jsonl", config)
    assert server.calls["chat"] == calls and again.statuses == summary.statuses


def test_servers_without_json_schema_get_json_mode(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.reject_json_schema = True
    config = settings(server, records, tmp_path / "cache")
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert summary.statuses == {"ok": RECORDS * PASSES}
    assert 1 <= server.calls["rejected_schema"] <= config.concurrency
    assert server.bodies[-1]["response_format"] == {"type": "json_object"}
    more = make_llm_records(tmp_path / "more", 2, seed=7)
    before = server.calls["rejected_schema"]
    generate_llm_instructions(
        more, tmp_path / "more.jsonl", settings(server, more, config.cache_dir)
    )
    assert server.calls["rejected_schema"] == before  # the fallback is remembered in the cache


def test_the_budget_cap_holds_and_a_rerun_pays_only_for_the_rest(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    budget = 0.03
    config = settings(server, records, tmp_path / "cache", budget_usd=budget)
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert summary.stopped and summary.stopped.startswith("budget cap reached")
    assert not summary.fatal and 0 < summary.spent_usd <= budget
    assert sum(r["cost_usd"] for r in log_rows(summary)) <= budget
    assert 0 < summary.statuses["ok"] < RECORDS * PASSES
    first = server.calls["chat"]
    config = config.model_copy(update={"budget_usd": None})
    rest = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert rest.records_complete == RECORDS and rest.calls == RECORDS * PASSES - first


def test_a_reply_without_usage_is_charged_its_worst_case_estimate(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.omit_usage = True  # was settled at $0: every request fitted a $0.02 cap
    budget = 0.02
    config = settings(server, records, tmp_path / "cache", budget_usd=budget)
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert summary.stopped and summary.stopped.startswith("budget cap reached")
    assert 0 < summary.spent_usd <= budget and server.calls["chat"] < RECORDS * PASSES
    rows = log_rows(summary)
    assert rows and all(r["usage_estimated"] and r["cost_usd"] > 0 for r in rows)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(summary.spent_usd)


def test_a_batch_reply_without_usage_is_charged_its_estimate_too(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.omit_usage = True
    config = settings(server, records, tmp_path / "cache", batch=True)
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    rows = log_rows(summary)
    assert len(rows) == RECORDS * PASSES
    assert all(r["usage_estimated"] and r["cost_usd"] > 0 for r in rows)
    assert summary.spent_usd == pytest.approx(sum(r["cost_usd"] for r in rows))


def test_usage_billed_above_the_estimate_does_not_carry_concurrent_calls_past_the_cap(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.usage_scale = 20  # every request billed about 3 times its worst-case estimate
    budget = 0.10
    config = settings(server, records, tmp_path / "cache", budget_usd=budget, concurrency=8)
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert summary.stopped and "the server billed up to 3." in summary.stopped
    assert 0 < summary.spent_usd <= budget  # was $0.35: a first wave of calls all overshot
    rows = log_rows(summary)
    assert sum(r["cost_usd"] for r in rows) <= budget and not any(
        r["usage_estimated"] for r in rows
    )


def test_the_cap_covers_every_run_writing_one_output(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    budget = 0.03
    out = tmp_path / "out.jsonl"
    config = settings(server, records, tmp_path / "cache", budget_usd=budget)
    first = generate_llm_instructions(records, out, config)
    assert first.stopped and 0 < first.spent_usd <= budget
    calls = server.calls["chat"]
    again = generate_llm_instructions(records, out, config)  # the same cap: nothing left
    assert server.calls["chat"] == calls and again.calls == 0 and again.spent_usd == 0
    assert again.stopped and "over all runs" in again.stopped
    assert again.earlier_usd == pytest.approx(first.spent_usd)
    config = config.model_copy(update={"budget_usd": 2 * budget})  # goes on from what was spent
    more = generate_llm_instructions(records, out, config)
    assert more.calls > 0 and first.spent_usd + more.spent_usd <= 2 * budget
    other = generate_llm_instructions(records, tmp_path / "other.jsonl", config)
    assert other.earlier_usd == 0  # another output has its own ledger (and the cache's replies)


def test_a_retry_after_beyond_the_clients_limit_is_reported_as_no_retry(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.retry_after = "300"  # the SDK waits at most 120 s, so it does not retry
    config = settings(server, records, tmp_path / "cache", max_retries=2)
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert server.calls["retry_after"] == RECORDS  # one attempt per record's local pass
    reasons = {r["reason"] for r in log_rows(summary)}
    assert reasons == {
        "rate limited (429), not retried: the server asked to wait 300 s (Retry-After), "
        "longer than the client waits (120 s)"
    }
    server.retry_after = None
    server.inject_faults(1.0, ("429",))  # retried, then given up: the count is the SDK's
    summary = generate_llm_instructions(records, tmp_path / "again.jsonl", config)
    assert {r["reason"] for r in log_rows(summary)} == {"rate limited (429) after 2 retries"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget_usd": float("nan")}, "--budget-usd must be a finite number"),
        ({"budget_usd": float("inf")}, "--budget-usd must be a finite number"),
        ({"budget_usd": -1.0}, "--budget-usd must be a finite number at least 0"),
        ({"timeout_s": float("nan")}, "--timeout must be a finite number greater than 0"),
        ({"timeout_s": 0.0}, "--timeout must be a finite number greater than 0"),
        ({"max_retries": -3}, "--max-retries must not be negative"),
        ({"poll_interval_s": float("nan")}, "--poll-interval must be a finite number"),
    ],
)
def test_settings_that_would_disable_a_limit_are_refused(
    server: FakeOpenAIServer, records: Path, tmp_path: Path, change: dict, message: str
) -> None:
    from rsgpt4v.errors import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        settings(server, records, tmp_path / "cache", **change)
    # changed after the settings were made (model_copy does not validate): checked again
    config = settings(server, records, tmp_path / "cache").model_copy(update=change)
    with pytest.raises(InputError, match=re.escape(message)):
        generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert server.calls["chat"] == 0


def test_quota_exhaustion_stops_the_run_with_a_clear_message(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.quota_after = 4
    config = settings(server, records, tmp_path / "cache", max_retries=1, concurrency=2)
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert summary.fatal and "insufficient_quota" in summary.stopped
    assert summary.statuses["ok"] == 4 and summary.records_complete < RECORDS
    assert server.calls["quota"] <= 2 * config.concurrency  # in-flight calls only, then stop


@pytest.mark.parametrize("workers", [0, 1])
def test_images_prepared_in_the_thread_or_in_worker_processes_give_the_same_file(
    server: FakeOpenAIServer, tmp_path: Path, workers: int
) -> None:
    records = make_llm_records(tmp_path / "data", 3)
    (tmp_path / "data" / "images" / "scene0001.png").unlink()
    out = tmp_path / f"out{workers}.jsonl"
    config = settings(server, records, tmp_path / f"cache{workers}", prepare_workers=workers)
    summary = generate_llm_instructions(records, out, config)
    failed = [r for r in log_rows(summary) if r["status"] == "failed"]
    assert [r["record_id"] for r in failed] == ["scene0001"]
    assert "scene0001.png: cannot read image" in failed[0]["reason"]
    assert summary.records_complete == 2
    if workers:
        threaded = tmp_path / "out0.jsonl"
        generate_llm_instructions(records, threaded, settings(server, records, tmp_path / "c0"))
        assert out.read_bytes() == threaded.read_bytes()


def test_the_seed_reaches_the_question_wording(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    """``--seed`` picks the LLM instructions' question wording as it does the rules'."""

    def questions(seed: int) -> list[str]:
        out = tmp_path / f"seed{seed}.jsonl"
        generate_llm_instructions(
            records, out, settings(server, records, tmp_path / "c", seed=seed)
        )
        return [i.messages[0].content for i in read_jsonl(out, Instruction)]

    first = questions(0)
    assert questions(0) == first  # the same seed: the same wording (from the cache)
    assert questions(1) != first
