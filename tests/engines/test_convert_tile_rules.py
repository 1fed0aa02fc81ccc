"""convert, tile and the rule instructions on both engines; merging hand-made shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsgpt4v.cli import app
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.problems import rejects_path
from rsgpt4v.schema import JsonlWriter, Record, read_jsonl
from rsgpt4v.tiling import TileSettings, tile_records
from tests.conftest import load_fixture_module
from tests.engines.conftest import invoke, runner, text


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
    from rsgpt4v.convert import SplitConverter
    from rsgpt4v.converters import get_converter
    from rsgpt4v.problems import ProblemLog

    root = load_fixture_module("ucm").make_fixture(tmp_path_factory.mktemp("ucm"))
    assert not isinstance(get_converter("ucm")(root, log=ProblemLog()), SplitConverter)
    invoke("convert", "ucm", root, "-o", tmp_path / "local.jsonl", "--skip-bad")
    invoke("convert", "ucm", root, "-o", tmp_path / "ray.jsonl", "--skip-bad", "--engine", "ray")
    assert text(tmp_path / "ray.jsonl") == text(tmp_path / "local.jsonl")
    assert text(tmp_path / "local.jsonl").count("\n") > 3


def test_tile_on_ray_writes_the_local_tiles_records_and_manifest(records: Path, tmp_path: Path):
    from rsgpt4v.engines import run_stage
    from rsgpt4v.tiling import TileStage

    settings = TileSettings(size=64, gap=16)
    root = records.parent
    local = tile_records(
        records, tmp_path / "local.jsonl", tiles_dir=tmp_path / "a", image_root=root,
        settings=settings,
    )  # fmt: skip
    stage = TileStage(
        records, tmp_path / "ray.jsonl", tmp_path / "b", root, settings, scenes_per_unit=2
    )
    on_ray = run_stage(stage, "ray")
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
