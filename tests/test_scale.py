"""``--engine ray`` writes the local engine's files, line for line, on a 2-CPU local Ray.

One Ray instance serves the module (it takes seconds to start); the API key of the fake server
is in the environment before it starts, so its workers inherit it as a cluster's nodes would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.instruct.llm.generate import generate_llm_instructions
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import JsonlWriter, Record, read_jsonl
from rsgpt4v.tiling import TileSettings, tile_records
from tests.conftest import load_fixture_module
from tests.fake_openai_server import FakeOpenAIServer
from tests.llm_fixtures import make_llm_records

ray = pytest.importorskip("ray")

KEY_ENV = "RSGPT4V_SCALE_TEST_KEY"
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    from rsgpt4v.scale.session import quiet_ray_data

    os.environ[KEY_ENV] = "sk-rsgpt4v-scale-test"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    quiet_ray_data()
    yield
    ray.shutdown()
    del os.environ[KEY_ENV]


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_llm_records(tmp_path_factory.mktemp("scale_records"), 9)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as running:
        yield running


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def invoke(*args: object) -> str:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_convert_on_ray_writes_the_local_records_and_rejects(dota_root: Path, tmp_path: Path):
    root = dota_root / "DOTA"  # train, val and test: three parts converted apart
    invoke("convert", "dota", root, "-o", tmp_path / "local.jsonl", "--skip-bad")
    out = invoke(
        "convert", "dota", root, "-o", tmp_path / "ray.jsonl", "--skip-bad", "--engine", "ray"
    )
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert text(tmp_path / "ray.jsonl").count("\n") == 5
    local_rejects = rejects_path(tmp_path / "local.jsonl")
    ray_rejects = rejects_path(tmp_path / "ray.jsonl")
    assert local_rejects.exists() == ray_rejects.exists()
    if local_rejects.exists():
        assert ray_rejects.read_text() == local_rejects.read_text()
    assert "5 records" in out
    assert not (tmp_path / "ray.jsonl.shards").exists()


def test_convert_of_a_converter_without_parts_runs_whole_on_ray(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
):
    from rsgpt4v.converters import get_converter
    from rsgpt4v.problems import ProblemLog
    from rsgpt4v.scale.convert import splitter_of

    root = load_fixture_module("ucm").make_fixture(tmp_path_factory.mktemp("ucm"))
    assert splitter_of(get_converter("ucm")(root, log=ProblemLog())) is None
    invoke("convert", "ucm", root, "-o", tmp_path / "local.jsonl", "--skip-bad")
    invoke("convert", "ucm", root, "-o", tmp_path / "ray.jsonl", "--skip-bad", "--engine", "ray")
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert text(tmp_path / "local.jsonl").count("\n") > 3


def test_tile_on_ray_writes_the_local_tiles_records_and_manifest(records: Path, tmp_path: Path):
    from rsgpt4v.scale.tile import tile_records_ray

    settings = TileSettings(size=64, gap=16)
    root = records.parent
    local = tile_records(
        records, tmp_path / "local.jsonl", tiles_dir=tmp_path / "a", image_root=root,
        settings=settings,
    )  # fmt: skip
    on_ray = tile_records_ray(
        records, tmp_path / "ray.jsonl", tiles_dir=tmp_path / "b", image_root=root,
        settings=settings, unit_lines=2,
    )  # fmt: skip
    counted = (on_ray.records, on_ray.tiles, on_ray.objects, on_ray.counts)
    assert counted == (local.records, local.tiles, local.objects, local.counts)
    assert local.tiles == 4 * 9
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert text(on_ray.manifest) == text(local.manifest)
    for tile in read_jsonl(tmp_path / "local.jsonl", Record):  # the same pixels, too
        written = (tmp_path / "b" / tile.image.path).read_bytes()
        assert written == (tmp_path / "a" / tile.image.path).read_bytes()


def test_instruct_rules_on_ray_writes_the_local_instructions(records: Path, tmp_path: Path):
    local = generate_instructions(records, tmp_path / "local.jsonl", image_root=records.parent)
    out = invoke(
        "instruct", records, "-o", tmp_path / "ray.jsonl", "--image-root", records.parent,
        "--engine", "ray",
    )  # fmt: skip
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert f"{local.instructions} instructions" in out and local.instructions > 9


def settings(server: FakeOpenAIServer, records: Path, cache: Path, **changes) -> LlmSettings:
    values = dict(
        model="gpt-4o",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        image_root=records.parent,
        cache_dir=cache,
        concurrency=2,
        max_retries=6,
        timeout_s=5.0,
    )
    return LlmSettings(**(values | changes))


def test_llm_on_ray_writes_the_local_instructions_and_a_rerun_pays_nothing(
    server: FakeOpenAIServer, records: Path, tmp_path: Path
):
    from rsgpt4v.scale.llm import generate_llm_ray

    local = generate_llm_instructions(
        records, tmp_path / "local.jsonl", settings(server, records, tmp_path / "cache-local")
    )
    before = server.calls["chat"]
    config = settings(server, records, tmp_path / "cache-ray")
    on_ray = generate_llm_ray(records, tmp_path / "ray.jsonl", config, shards=3)
    assert server.calls["chat"] - before == on_ray.calls == local.calls == 9 * 3
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert on_ray.statuses == local.statuses and on_ray.per_task == local.per_task
    assert text(on_ray.log) == text(local.log)  # the same requests, in the same order
    before = server.calls["chat"]
    again = generate_llm_ray(records, tmp_path / "again.jsonl", config, shards=2)
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
    from rsgpt4v.scale.llm import generate_llm_ray

    budget = 0.03  # a third of the run's cost; each of 3 shards alone could spend it
    config = settings(server, records, tmp_path / "cache", budget_usd=budget)
    summary = generate_llm_ray(records, tmp_path / "out.jsonl", config, shards=3)
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

    from rsgpt4v.scale.llm import generate_llm_ray

    marker = tmp_path / "died"
    before = server.calls["chat"]
    config = settings(server, records, tmp_path / "cache")
    summary = generate_llm_ray(
        records, tmp_path / "out.jsonl", config, shards=3,
        after_shard=partial(die_once_after_paying, marker=str(marker)),
        cache_per_shard=cache_per_shard,
    )  # fmt: skip
    assert marker.exists()  # a worker did die, and Ray ran its task again
    assert server.calls["chat"] - before == 9 * 3  # every request paid once
    assert summary.records_complete == 9 and summary.statuses == {"ok": 9 * 3}
    assert not (tmp_path / "cache" / "shards").exists()  # shard caches folded into the main one
    before = server.calls["chat"]
    again = generate_llm_ray(  # other shards: each seeded with the main cache's replies
        records, tmp_path / "again.jsonl", config, shards=2, cache_per_shard=cache_per_shard
    )
    assert again.calls == 0 and server.calls["chat"] == before
    reference = generate_llm_instructions(records, tmp_path / "ref.jsonl", config)
    assert reference.calls == 0
    assert text(tmp_path / "out.jsonl") == text(tmp_path / "ref.jsonl")


def test_validate_on_ray_writes_the_local_clean_file_rejects_and_report(
    records: Path, tmp_path: Path
):
    from rsgpt4v.scale.validate import validate_instructions_ray
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    leaky = tmp_path / "records.jsonl"  # scene0000's image again, in the test split
    first = json.loads(records.read_text().splitlines()[0])
    leaky.write_text(records.read_text() + json.dumps(first | {"id": "x", "split": "test"}) + "\n")
    generate_instructions(records, tmp_path / "rules.jsonl")
    items = (tmp_path / "rules.jsonl").read_text().splitlines(keepends=True)
    copy = json.loads(items[0]) | {"id": "copy-of-first"}  # same conversation, units apart
    wrong = json.loads(items[1]) | {"image_size": [1, 1]}
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        items[0] + "".join(items[2:]) + json.dumps(copy) + "\n" + json.dumps(wrong) + "\nnot json\n"
    )
    options = ValidationOptions(image_root=records.parent)
    local = validate_instructions(
        mixed, leaky, tmp_path / "local.jsonl", report_dir=tmp_path / "a", options=options
    )
    on_ray = validate_instructions_ray(
        mixed, leaky, tmp_path / "ray.jsonl", report_dir=tmp_path / "b", options=options,
        unit_lines=7,
    )  # fmt: skip
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    local_rejects = rejects_path(tmp_path / "local.jsonl").read_text()
    assert rejects_path(tmp_path / "ray.jsonl").read_text() == local_rejects
    assert set(local.reasons) == {"duplicate", "image_size", "schema", "leaked_image"}
    assert on_ray.leaked_records == local.leaked_records == 1
    assert on_ray.reasons == local.reasons and on_ray.kept == local.kept
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    for summary in (a, b):
        for key in ("output", "rejects_file", "report"):
            summary["run"].pop(key, None)
    assert a == b


def test_validate_command_takes_the_ray_engine(records: Path, tmp_path: Path):
    generate_instructions(records, tmp_path / "rules.jsonl")
    common = ("validate", tmp_path / "rules.jsonl", "--records", records)
    invoke(*common, "-o", tmp_path / "local.jsonl")
    out = invoke(*common, "-o", tmp_path / "ray.jsonl", "--engine", "ray")
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    assert "0 rejected" in out


def test_a_bad_record_line_stops_the_ray_run_naming_file_and_line(records: Path, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    text = records.read_text().splitlines(keepends=True)
    bad.write_text("".join(text[:4]) + '{"id": "x"}\n' + "".join(text[4:]))
    result = runner.invoke(
        app, ["instruct", str(bad), "-o", str(tmp_path / "o.jsonl"), "--engine", "ray"]
    )
    assert result.exit_code == 2
    assert f"{bad.resolve()}:5" in result.output


def test_shards_made_by_hand_merge_back_into_the_unsharded_file(records: Path, tmp_path: Path):
    invoke("instruct", records, "-o", tmp_path / "whole.jsonl", "--tasks", "counting,presence")
    parts = [tmp_path / f"part{index}.jsonl" for index in range(3)]
    for index, part in enumerate(parts):
        invoke(
            "instruct", records, "-o", part, "--tasks", "counting,presence", "--shard", f"{index}/3"
        )
    invoke("merge-shards", *parts, "-o", tmp_path / "merged.jsonl", "--records", records)
    assert text(tmp_path / "merged.jsonl") == text(tmp_path / "whole.jsonl")


def test_merge_shards_sorts_shards_written_in_any_order(tmp_path: Path):
    first, second = tmp_path / "s0.jsonl", tmp_path / "s1.jsonl"
    first.write_text('{"id": "c", "v": 1}\n{"id": "a", "v": 2}\n')
    second.write_text('{"id": "b", "v": 3}\n')
    out = invoke("merge-shards", first, second, "-o", tmp_path / "all.jsonl")
    assert [json.loads(line)["id"] for line in (tmp_path / "all.jsonl").open()] == ["a", "b", "c"]
    assert "3 lines from 2 shards" in out
    with JsonlWriter(tmp_path / "s2.jsonl") as writer:
        writer.write_lines(['{"no_id": 1}\n'])
    result = runner.invoke(
        app, ["merge-shards", str(tmp_path / "s2.jsonl"), "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "no id field" in result.output


def _with_text_boxes(records: Path, tmp_path: Path) -> Path:
    """Rule instructions, three of whose answers write boxes as text (one far off any label)."""
    generate_instructions(records, tmp_path / "rules.jsonl")
    items = [json.loads(line) for line in (tmp_path / "rules.jsonl").read_text().splitlines()]
    scene0 = [item for item in items if item["record_id"] == "scene0000"]
    boxes = ("[4, 4, 19, 11]", "[60, 60, 90, 90]", "[0.04, 0.04, 0.2, 0.12]")
    for item, box in zip(scene0, boxes, strict=False):  # scene0000 has more instructions
        item["messages"][-1]["content"] += f" One is at {box}."
    path = tmp_path / "boxes.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_validate_on_ray_reads_text_boxes_back_as_json_never_pickle(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Result shards sit on shared storage: nothing read from them may be unpickled."""
    import pickle

    from rsgpt4v.report.stats import ReportStats
    from rsgpt4v.scale import validate as on_ray
    from rsgpt4v.scale.units import line_units
    from rsgpt4v.validate.records import RecordTable
    from rsgpt4v.validate.run import ValidationOptions, ValidationSummary

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used for the result shards")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "dumps", refuse)
    instructions = _with_text_boxes(records, tmp_path)
    (unit,) = line_units(instructions, 1000)
    options = ValidationOptions(samples=1000)
    work = {"records": str(records.resolve()), "options": options, "leaks": {}}
    shard = on_ray._check_unit(unit, folder=str(tmp_path), **work)["shard"]
    rows = [json.loads(line) for line in Path(shard).read_text().splitlines()]
    boxes = [box for row in rows for box in row.get("boxes", [])]
    assert len(boxes) == 3 and all(isinstance(box, list) and len(box) == 8 for box in boxes)
    stats = ReportStats(samples=1000)
    summary = ValidationSummary(format="instructions", output=tmp_path / "clean.jsonl")
    with RecordTable(records) as table:
        on_ray._write([shard], instructions, summary, table, stats)
    drawn = [box for sample in stats.samples() for box in sample["text_boxes"]]
    assert len(drawn) == 3 and {box["object_id"] for box in drawn} == {0}
    assert summary.reasons == {"text_box_mismatch": 1}


def test_validate_on_ray_draws_the_local_text_boxes(records: Path, tmp_path: Path):
    from rsgpt4v.scale.validate import validate_instructions_ray
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    instructions = _with_text_boxes(records, tmp_path)
    options = ValidationOptions(samples=1000)
    local = validate_instructions(
        instructions, records, tmp_path / "local.jsonl", report_dir=tmp_path / "a", options=options
    )
    on_ray = validate_instructions_ray(
        instructions, records, tmp_path / "ray.jsonl", report_dir=tmp_path / "b", options=options,
        unit_lines=7,
    )  # fmt: skip
    assert local.reasons == on_ray.reasons == {"text_box_mismatch": 1}
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert text(rejects_path(tmp_path / "ray.jsonl")) == text(
        rejects_path(tmp_path / "local.jsonl")
    )
    assert text(tmp_path / "b" / "data.js") == text(tmp_path / "a" / "data.js")
    assert text(tmp_path / "a" / "data.js").count('"object_id"') == 3
