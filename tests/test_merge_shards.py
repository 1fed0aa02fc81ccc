"""``merge-shards`` writes the whole run or nothing: a missing or repeated shard exits 2, named.

Parts are real ``instruct --shard I/N`` outputs. Parts with manifests (``PART.shard.json``, as
:func:`rsgpt4v.engines.manifests.write_manifest` writes them when a shard finishes) are checked
by them; parts without one by their record ids.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.engines.manifests import manifest_path, write_manifest
from rsgpt4v.schema import ImageInfo, Object, Record, write_jsonl

runner = CliRunner()
RECORDS = 80  # about 20 per shard of 4: a part's shard is certain from its record ids


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """records.jsonl, whole.jsonl (one unsharded run), part{I}of{N}.jsonl for N = 4 and 2."""
    folder = tmp_path_factory.mktemp("merge_shards")
    records = [
        Record(
            id=f"toy/train/{n}",
            dataset="toy",
            split="train",
            image=ImageInfo(path=f"{n}.png", width=100, height=100),
            objects=[Object(id=0, category=("ship", "plane")[n % 2], bbox=[10, 10, 20, 20])],
        )
        for n in range(RECORDS)
    ]
    write_jsonl(folder / "records.jsonl", records)
    instruct(folder, "whole.jsonl")
    for count in (4, 2):
        for index in range(count):
            instruct(folder, f"part{index}of{count}.jsonl", "--shard", f"{index}/{count}")
    return folder


def instruct(folder: Path, out: str, *extra: str) -> None:
    args = ["instruct", str(folder / "records.jsonl"), "-o", str(folder / out)]
    result = runner.invoke(app, [*args, "--tasks", "presence,counting", *extra])
    assert result.exit_code == 0, result.output


def parts(run: Path, count: int, indices: list[int], into: Path, manifests: bool) -> list[Path]:
    """Copies of shards ``indices`` of the N = ``count`` run, with manifests if asked."""
    out = []
    for index in indices:
        part = into / f"part{index}of{count}.jsonl"
        shutil.copyfile(run / part.name, part)
        if manifests:
            write_manifest(part, (index, count), {"records": run / "records.jsonl"})
        out.append(part)
    return out


def merge(run: Path, shards: list[Path], out: Path, records: bool = True):
    args = ["merge-shards", *map(str, shards), "-o", str(out)]
    return runner.invoke(app, args + (["--records", str(run / "records.jsonl")] if records else []))


@pytest.mark.parametrize("manifests", [True, False])
def test_every_shard_once_merges_back_into_the_unsharded_file(
    run: Path, tmp_path: Path, manifests: bool
):
    shards = parts(run, 4, [2, 0, 3, 1], tmp_path, manifests)
    result = merge(run, shards, tmp_path / "merged.jsonl")
    assert result.exit_code == 0, result.output
    merged = (tmp_path / "merged.jsonl").read_text(encoding="utf-8")
    assert merged == (run / "whole.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("manifests", [True, False])
def test_a_missing_shard_exits_2_naming_it_and_writes_nothing(
    run: Path, tmp_path: Path, manifests: bool
):
    shards = parts(run, 4, [0, 1, 3], tmp_path, manifests)
    result = merge(run, shards, tmp_path / "merged.jsonl")
    assert result.exit_code == 2, result.output
    assert "shard 2 of 4" in result.output and "missing" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "merged.jsonl").exists()


@pytest.mark.parametrize("manifests", [True, False])
def test_one_shard_of_two_alone_is_a_missing_shard(run: Path, tmp_path: Path, manifests: bool):
    result = merge(run, parts(run, 2, [0], tmp_path, manifests), tmp_path / "merged.jsonl")
    assert result.exit_code == 2, result.output
    assert "shard 1 of 2" in result.output and "missing" in result.output


@pytest.mark.parametrize("manifests", [True, False])
def test_a_repeated_shard_exits_2_naming_it_and_writes_nothing(
    run: Path, tmp_path: Path, manifests: bool
):
    shards = parts(run, 4, [0, 1, 2, 3], tmp_path, manifests)
    again = tmp_path / "again.jsonl"  # shard 1 copied under another name (a re-run, say)
    shutil.copyfile(shards[1], again)
    if manifests:
        shutil.copyfile(manifest_path(shards[1]), manifest_path(again))
    result = merge(run, [*shards, again], tmp_path / "merged.jsonl")
    assert result.exit_code == 2, result.output
    assert str(again) in result.output and str(shards[1]) in result.output
    if manifests:
        assert "shard 1 of 4, given twice" in result.output
    assert not (tmp_path / "merged.jsonl").exists()


def test_the_same_part_named_twice_exits_2(run: Path, tmp_path: Path):
    shards = parts(run, 2, [0, 1], tmp_path, manifests=False)
    result = merge(run, [*shards, shards[0]], tmp_path / "merged.jsonl")
    assert result.exit_code == 2 and "is given twice" in result.output


def test_without_records_an_id_in_two_parts_exits_2_naming_both(run: Path, tmp_path: Path):
    shards = parts(run, 4, [0, 1, 2, 3], tmp_path, manifests=False)
    again = tmp_path / "again.jsonl"
    shutil.copyfile(shards[2], again)
    result = merge(run, [*shards, again], tmp_path / "m.jsonl", records=False)
    assert result.exit_code == 2, result.output
    assert "is also in" in result.output
    assert str(again) in result.output and str(shards[2]) in result.output
    assert not (tmp_path / "m.jsonl").exists()
    assert merge(run, shards, tmp_path / "m.jsonl", records=False).exit_code == 0


def test_a_part_changed_after_its_manifest_exits_2(run: Path, tmp_path: Path):
    shards = parts(run, 4, [0, 1, 2, 3], tmp_path, manifests=True)
    shutil.copyfile(run / "part1of4.jsonl", shards[0])  # a later run wrote over part 0
    result = merge(run, shards, tmp_path / "merged.jsonl")
    assert result.exit_code == 2 and "does not match its manifest" in result.output
    assert str(shards[0]) in result.output


def test_parts_of_different_runs_or_records_exit_2(run: Path, tmp_path: Path):
    four = parts(run, 4, [0, 1, 2, 3], tmp_path, manifests=True)
    two = parts(run, 2, [1], tmp_path, manifests=True)
    result = merge(run, [*four[:3], *two], tmp_path / "merged.jsonl")
    assert result.exit_code == 2 and "shard 1 of 2" in result.output
    assert "different runs" in result.output
    other = tmp_path / "other.jsonl"
    other.write_text((run / "records.jsonl").read_text() + "\n")
    args = ["merge-shards", *map(str, four), "-o", str(tmp_path / "m.jsonl"), "--records"]
    result = runner.invoke(app, [*args, str(other)])
    assert result.exit_code == 2 and "not the records file" in result.output


def test_parts_with_and_without_manifests_do_not_mix(run: Path, tmp_path: Path):
    shards = parts(run, 4, [0, 1, 2, 3], tmp_path, manifests=True)
    manifest_path(shards[3]).unlink()
    result = merge(run, shards, tmp_path / "merged.jsonl")
    assert result.exit_code == 2 and "has no shard manifest" in result.output
    assert str(shards[3]) in result.output


def test_a_line_of_a_record_not_in_the_records_file_exits_2(run: Path, tmp_path: Path):
    shards = parts(run, 2, [0, 1], tmp_path, manifests=False)
    line = json.loads(shards[1].read_text().splitlines()[0]) | {"record_id": "toy/train/999"}
    with shards[1].open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    result = merge(run, shards, tmp_path / "merged.jsonl")
    assert result.exit_code == 2 and "toy/train/999" in result.output
    assert f"{shards[1]}:" in result.output


# --- manifests written by the CLI itself -------------------------------------------------------


def test_instruct_shard_writes_its_manifest(run: Path):
    manifest = json.loads(manifest_path(run / "part0of2.jsonl").read_text(encoding="utf-8"))
    lines = (run / "part0of2.jsonl").read_text(encoding="utf-8").count("\n")
    assert (manifest["command"], manifest["shard"], manifest["of"]) == ("instruct", 0, 2)
    assert manifest["lines"] == lines > 0 and set(manifest["inputs"]) == {"records"}
    assert not manifest_path(run / "whole.jsonl").exists()  # an unsharded run is no part


def test_the_cli_written_parts_merge_and_one_alone_is_refused(run: Path, tmp_path: Path):
    """The parts exactly as `instruct --shard` left them, manifests and all."""
    shards = [run / "part1of2.jsonl", run / "part0of2.jsonl"]
    result = merge(run, shards, tmp_path / "merged.jsonl")
    assert result.exit_code == 0, result.output
    merged = (tmp_path / "merged.jsonl").read_text(encoding="utf-8")
    assert merged == (run / "whole.jsonl").read_text(encoding="utf-8")
    for records in (True, False):  # the manifests prove the set, with or without --records
        alone = merge(run, shards[1:], tmp_path / "alone.jsonl", records=records)
        assert alone.exit_code == 2, alone.output
        assert "shard 1 of 2 is missing" in alone.output
        assert len(alone.output.strip().splitlines()) == 1
        assert not (tmp_path / "alone.jsonl").exists()


def test_a_shard_rerun_into_its_output_writes_a_manifest_that_matches(run: Path, tmp_path: Path):
    """A rerun replaces the manifest with one of the new output (not a stale one)."""
    shutil.copyfile(run / "records.jsonl", tmp_path / "records.jsonl")
    instruct(tmp_path, "part.jsonl", "--shard", "1/2")
    first = manifest_path(tmp_path / "part.jsonl").read_text(encoding="utf-8")
    instruct(tmp_path, "part.jsonl", "--shard", "1/2", "--seed", "3")
    again = json.loads(manifest_path(tmp_path / "part.jsonl").read_text(encoding="utf-8"))
    assert again != json.loads(first)
    assert again["lines"] == (tmp_path / "part.jsonl").read_text(encoding="utf-8").count("\n")


def _llm(records: Path, out: Path, server, *extra: str):
    args = [
        "instruct", str(records), "-o", str(out), "--generator", "llm", "--model", "gpt-4o",
        "--base-url", server.base_url, "--api-key-env", "RSGPT4V_SHARD_KEY",
        "--image-root", str(records.parent), "--cache", str(out.parent / "cache"),
        "--timeout", "0.5", "--max-retries", "2", *extra,
    ]  # fmt: skip
    return runner.invoke(app, args)  # a later --cache in extra wins


def test_llm_shards_write_manifests_and_a_stopped_shard_drops_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A shard stopped early (a spent budget) is not whole: no manifest may vouch for it."""
    from tests.fake_openai_server import FakeOpenAIServer
    from tests.llm_fixtures import make_llm_records

    monkeypatch.setenv("RSGPT4V_SHARD_KEY", "sk-test")
    records = make_llm_records(tmp_path / "data", 6)
    out = [tmp_path / f"part{index}.jsonl" for index in range(2)]
    with FakeOpenAIServer() as server:
        assert _llm(records, out[0], server, "--shard", "0/2", "--dry-run").exit_code == 0
        assert not manifest_path(out[0]).exists()  # a dry run writes nothing
        for index, part in enumerate(out):
            result = _llm(records, part, server, "--shard", f"{index}/2")
            assert result.exit_code == 0, result.output
            assert json.loads(manifest_path(part).read_text())["shard"] == index
        merged = runner.invoke(
            app, ["merge-shards", *map(str, out), "-o", str(tmp_path / "m.jsonl")]
        )
        assert merged.exit_code == 0, merged.output
        alone = runner.invoke(app, ["merge-shards", str(out[1]), "-o", str(tmp_path / "a.jsonl")])
        assert alone.exit_code == 2 and "shard 0 of 2 is missing" in alone.output
        # rerun shard 0 with a fresh cache under a budget it cannot meet: it stops early
        again = ["--shard", "0/2", "--budget-usd", "0.000001", "--cache", str(tmp_path / "new")]
        stopped = _llm(records, out[0], server, *again)
    assert "stopped:" in stopped.output, stopped.output
    assert not manifest_path(out[0]).exists()
    result = runner.invoke(app, ["merge-shards", *map(str, out), "-o", str(tmp_path / "m2.jsonl")])
    assert result.exit_code == 2 and "has no shard manifest" in result.output
