"""``rsgpt4v instruct --generator llm|both``: dry run, batch, shards, errors, and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.schema import Instruction, read_jsonl
from tests.fake_openai_server import FakeOpenAIServer
from tests.llm_fixtures import make_llm_records

KEY = "sk-rsgpt4v-CLI-0a1b2c3d4e5f60718293a4b5"
runner = CliRunner()


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_llm_records(tmp_path_factory.mktemp("llm_cli_records"), 5)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSGPT4V_CLI_KEY", KEY)


def instruct(records: Path, output: Path, server: FakeOpenAIServer, *extra: str):
    args = [
        "instruct", str(records), "-o", str(output), "--generator", "llm", "--model", "gpt-4o",
        "--base-url", server.base_url, "--api-key-env", "RSGPT4V_CLI_KEY",
        "--image-root", str(records.parent), "--cache", str(output.parent / "cache"),
        "--timeout", "0.5", "--max-retries", "2", "--poll-interval", "0.01", *extra,
    ]  # fmt: skip
    return runner.invoke(app, args)


def test_dry_run_prints_a_prompt_and_an_estimate_and_calls_nothing(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    result = instruct(records, tmp_path / "out.jsonl", server, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Task: local pass" in result.output and '{"id":0,"category":' in result.output
    assert "5 records, 15 requests to gpt-4o" in result.output
    assert "cost: ~$" in result.output and "no request was sent" in result.output
    assert sum(server.calls.values()) == 0 and not (tmp_path / "out.jsonl").exists()


def test_a_completeness_file_reaches_the_llm_prompts(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    """The class counts of a class the file calls partial become lower bounds in the prompt."""
    import json

    first = json.loads(records.read_text(encoding="utf-8").splitlines()[0])
    dataset, category = first["dataset"], first["objects"][0]["category"]
    table = tmp_path / "completeness.yaml"
    table.write_text(f"{dataset}:\n  partial: [{category}]\n", encoding="utf-8")
    default = instruct(records, tmp_path / "a.jsonl", server, "--dry-run").output
    partial = instruct(
        records, tmp_path / "b.jsonl", server, "--dry-run", "--completeness", str(table)
    ).output
    assert f"{category} at least " in partial and f"{category} at least " not in default
    assert sum(server.calls.values()) == 0


def test_batch_round_trips_through_the_batch_endpoints(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    result = instruct(records, tmp_path / "sync" / "out.jsonl", server)
    assert result.exit_code == 0, result.output
    server.reset_counts()
    server.batch_fail_lines = 1
    result = instruct(records, tmp_path / "batch" / "out.jsonl", server, "--batch")
    assert result.exit_code == 0, result.output
    assert server.calls["chat"] == 0 and server.calls["batches"] == 3  # one round per pass
    assert "failed 1" in result.output  # the error-file line is logged, not lost
    result = instruct(records, tmp_path / "batch" / "out.jsonl", server, "--batch")
    assert result.exit_code == 0, result.output
    assert server.calls["batches"] == 4 and server.calls["batch_requests"] == 5 * 3 + 1
    synced = _by_id(tmp_path / "sync" / "out.jsonl")
    batched = _by_id(tmp_path / "batch" / "out.jsonl")
    assert synced.keys() == batched.keys()
    for key, instruction in batched.items():
        assert instruction.messages == synced[key].messages
        half = synced[key].source.model_dump()["cost_usd"] / 2
        assert instruction.source.model_dump()["cost_usd"] == pytest.approx(half)


def _by_id(path: Path) -> dict[str, Instruction]:
    return {i.id: i for i in read_jsonl(path, Instruction)}


def test_shards_split_the_run_and_add_up_to_it(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    assert instruct(records, tmp_path / "all.jsonl", server).exit_code == 0
    parts = []
    for index in range(3):
        out = tmp_path / f"part{index}.jsonl"
        result = instruct(records, out, server, "--shard", f"{index}/3")
        assert result.exit_code == 0, result.output
        parts.append(set(_by_id(out)))
    assert sum(map(len, parts)) == len(set().union(*parts))
    assert set().union(*parts) == set(_by_id(tmp_path / "all.jsonl"))


def test_both_writes_the_rule_instructions_then_the_llm_ones(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "both.jsonl"
    result = instruct(records, out, server, "--generator", "both", "--tasks", "counting")
    assert result.exit_code == 0, result.output
    generators = [i.source.generator for i in read_jsonl(out, Instruction)]
    assert generators[0] == "rules" and generators[-1] == "llm"
    assert generators == sorted(generators, key=lambda g: g != "rules")


def test_quota_exhaustion_exits_2_with_the_reason(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    server.quota_after = 2
    result = instruct(records, tmp_path / "out.jsonl", server, "--concurrency", "1")
    assert result.exit_code == 2
    assert "insufficient_quota" in result.output and "rerun" in result.output
    assert (tmp_path / "out.jsonl").exists()  # what finished is written


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--budget-usd", "nan"),  # NaN compares false with everything: it capped nothing
        ("--budget-usd", "inf"),
        ("--budget-usd", "-1"),
        ("--timeout", "nan"),
        ("--timeout", "0"),
        ("--max-retries", "-3"),  # was a ValueError traceback from the SDK
        ("--poll-interval", "nan"),
    ],
)
def test_numbers_that_would_disable_a_limit_are_refused_before_anything_runs(
    server: FakeOpenAIServer, records: Path, tmp_path: Path, option: str, value: str
) -> None:
    result = instruct(records, tmp_path / "out.jsonl", server, option, value)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output
    assert sum(server.calls.values()) == 0 and not (tmp_path / "out.jsonl").exists()


def test_a_rerun_under_the_same_budget_pays_nothing_more_and_says_why(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    first = instruct(records, out, server, "--budget-usd", "0.03")
    assert first.exit_code == 0 and "stopped: budget cap reached" in first.output
    calls = server.calls["chat"]
    again = instruct(records, out, server, "--budget-usd", "0.03")
    assert again.exit_code == 0 and server.calls["chat"] == calls
    assert "spent on this output over all its runs" in again.output
    assert "0 API calls" in again.output and "stopped: budget cap reached" in again.output


def test_llm_needs_a_model_and_an_image_root(records: Path, tmp_path: Path) -> None:
    base = ["instruct", str(records), "-o", str(tmp_path / "o.jsonl"), "--generator", "llm"]
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "--model" in result.output
    result = runner.invoke(app, [*base, "--model", "gpt-4o", "--api-key-env", "RSGPT4V_CLI_KEY"])
    assert result.exit_code == 2 and "--image-root" in result.output
    result = runner.invoke(app, [*base[:-1], "gpt"])
    assert result.exit_code == 2 and "rules, llm, both" in result.output


def test_the_key_is_in_no_file_written_nor_in_any_message(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
) -> None:
    outputs = []
    outputs.append(instruct(records, tmp_path / "a" / "out.jsonl", server).output)
    outputs.append(instruct(records, tmp_path / "b" / "out.jsonl", server, "--batch").output)
    outputs.append(instruct(records, tmp_path / "c" / "out.jsonl", server, "--dry-run").output)
    server.bad_request_echoing_key = True  # errors quoting the key end up in the log
    result = instruct(records, tmp_path / "d" / "out.jsonl", server)
    outputs.append(result.output)
    log = tmp_path / "d" / "out.generation.jsonl"
    reasons = [json.loads(line)["reason"] for line in log.read_text().splitlines()]
    assert reasons and all("Invalid request from key [redacted]" in r for r in reasons)
    assert f"Bearer {KEY}" in server.authorizations  # the key was sent, as it must be
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    for run in "abd":  # the dry run (c) writes nothing
        for name in ("out.jsonl", "out.generation.jsonl", "cache/llm_cache.sqlite"):
            assert tmp_path / run / name in written
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
        assert KEY[10:26].encode() not in path.read_bytes(), path
    for output in outputs:
        assert KEY not in output
