"""The LLM passes on Ray: the local run's files, one budget, nothing paid twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rsgpt4v.engines import run_stage
from rsgpt4v.instruct.llm.generate import LlmSummary, generate_llm_instructions
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.instruct.llm.stage import LlmStage
from tests.engines.conftest import KEY_ENV, invoke, settings, text
from tests.fake_openai_server import FakeOpenAIServer


def on_ray(records: Path, output: Path, config: LlmSettings, **stage) -> LlmSummary:
    """The LLM stage run on the Ray engine (``stage``: its cluster-only fields)."""
    return run_stage(LlmStage(records, output, config, **stage), "ray")


def test_llm_on_ray_writes_the_local_instructions_and_a_rerun_pays_nothing(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
):
    local = generate_llm_instructions(
        records, tmp_path / "local.jsonl", settings(server, records, tmp_path / "cache-local")
    )
    before = server.calls["chat"]
    config = settings(server, records, tmp_path / "cache-ray")
    fanned = on_ray(records, tmp_path / "ray.jsonl", config, shards=3)
    assert server.calls["chat"] - before == fanned.calls == local.calls == 9 * 3
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert fanned.statuses == local.statuses and fanned.per_task == local.per_task
    assert text(fanned.log) == text(local.log)  # the same requests, in the same order
    before = server.calls["chat"]
    again = on_ray(records, tmp_path / "again.jsonl", config, shards=2)
    assert server.calls["chat"] == before and again.calls == 0 and again.cached == 9 * 3
    assert text(tmp_path / "again.jsonl") == text(tmp_path / "local.jsonl")


def test_instruct_command_runs_rules_and_llm_on_ray(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
):
    def both(output: Path, *extra: str) -> str:
        return invoke(
            "instruct", records, "-o", output, "--generator", "both", "--model", "gpt-4o",
            "--base-url", server.base_url, "--api-key-env", KEY_ENV, "--tasks", "counting",
            "--image-root", records.parent, "--cache", tmp_path / "cache", *extra,
        )  # fmt: skip

    both(tmp_path / "local.jsonl")
    before = server.calls["chat"]
    out = both(tmp_path / "ray.jsonl", "--engine", "ray")
    assert server.calls["chat"] == before  # the local run's replies, from the shared cache
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    items = map(json.loads, text(tmp_path / "ray.jsonl").splitlines())
    generators = {item["source"]["generator"] for item in items}
    assert generators == {"rules", "llm"} and "rules: " in out and "0 API calls" in out


def test_the_budget_is_one_cap_for_all_workers(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
):
    budget = 0.03  # a third of the run's cost; each of 3 shards alone could spend it
    config = settings(server, records, tmp_path / "cache", budget_usd=budget)
    summary = on_ray(records, tmp_path / "out.jsonl", config, shards=3)
    assert summary.stopped and summary.stopped.startswith("budget cap reached")
    assert 0 < summary.spent_usd <= budget
    assert 0 < summary.statuses["ok"] < 9 * 3


def die_once_after_paying(index: int, marker: str) -> None:
    """A worker that dies after its shard's replies were paid and cached, before returning."""
    if index == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)


@pytest.mark.parametrize("cache_per_shard", [False, True], ids=["shared-cache", "shard-caches"])
def test_a_worker_killed_mid_run_loses_nothing_and_repeats_no_paid_call(
    server: FakeOpenAIServer, records: Path, tmp_path: Path, cache_per_shard: bool
):
    from functools import partial

    marker = tmp_path / "died"
    before = server.calls["chat"]
    config = settings(server, records, tmp_path / "cache")
    summary = on_ray(
        records, tmp_path / "out.jsonl", config, shards=3,
        after_shard=partial(die_once_after_paying, marker=str(marker)),
        cache_per_shard=cache_per_shard,
    )  # fmt: skip
    assert marker.exists()  # a worker did die, and Ray ran its task again
    assert server.calls["chat"] - before == 9 * 3  # every request paid once
    assert summary.records_complete == 9 and summary.statuses == {"ok": 9 * 3}
    assert not (tmp_path / "cache" / "shards").exists()  # shard caches folded into the main one
    before = server.calls["chat"]
    again = on_ray(  # other shards: each seeded with the main cache's replies
        records, tmp_path / "again.jsonl", config, shards=2, cache_per_shard=cache_per_shard
    )
    assert again.calls == 0 and server.calls["chat"] == before
    reference = generate_llm_instructions(records, tmp_path / "ref.jsonl", config)
    assert reference.calls == 0
    assert text(tmp_path / "out.jsonl") == text(tmp_path / "ref.jsonl")
