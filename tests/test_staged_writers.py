"""``coco``, ``export --format parquet`` and ``validate -o``: nothing at ``OUT.partial`` matters.

Each writes a new temporary file beside OUT and renames it (issue 21, classes 1 and 11): a
symlink planted at the old fixed name is never written through, and a folder there is no
obstacle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.convert import convert_dataset
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.problems import rejects_path

runner = CliRunner()


@pytest.fixture(scope="module")
def made(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("made")
    records = convert_dataset("dota", sample_root, out / "records.jsonl", split="train").output
    instructions = generate_instructions(
        records, out / "instructions.jsonl", tasks="counting,grounding"
    ).output
    broken = out / "broken.jsonl"  # one line that is not JSON: validate writes rejects too
    broken.write_text(instructions.read_text(encoding="utf-8") + '{"id": \n', encoding="utf-8")
    return {"records": records, "instructions": instructions, "broken": broken}


def _coco(made: dict[str, Path], out: Path) -> list[str]:
    return ["coco", str(made["records"]), "-o", str(out)]


def _parquet(made: dict[str, Path], out: Path) -> list[str]:
    return ["export", str(made["instructions"]), "-o", str(out), "--format", "parquet"]


def _validate(made: dict[str, Path], out: Path) -> list[str]:
    return ["validate", str(made["broken"]), "--records", str(made["records"]), "-o", str(out)]


def _rows(out: Path) -> int:
    """How many items the output holds, read the way its consumer reads it."""
    if out.suffix == ".parquet":
        return pq.read_table(out).num_rows
    if out.suffix == ".json":
        return len(json.loads(out.read_text(encoding="utf-8"))["annotations"])
    return len(out.read_text(encoding="utf-8").splitlines())


COMMANDS: dict[str, tuple[Callable[[dict[str, Path], Path], list[str]], str]] = {
    "coco": (_coco, "coco.json"),
    "export parquet": (_parquet, "train.parquet"),
    "validate": (_validate, "clean.jsonl"),
}
commands = pytest.mark.parametrize("command", list(COMMANDS))


def _outputs(tmp_path: Path, command: str, made: dict[str, Path]) -> tuple[Path, list[str]]:
    args, name = COMMANDS[command]
    out = tmp_path / "out" / name
    out.parent.mkdir()
    return out, args(made, out)


def _staged_left(folder: Path, *planted: Path) -> list[str]:
    """Temporary files the run left behind (none: each is renamed or removed)."""
    return sorted(p.name for p in folder.glob("*.partial") if p not in planted)


@commands
def test_a_symlink_at_out_partial_leaves_its_target_unchanged(
    made: dict[str, Path], tmp_path: Path, command: str
) -> None:
    out, args = _outputs(tmp_path, command, made)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted = [out.with_name(out.name + ".partial")]
    if command == "validate":  # its rejects file, too
        rejects = rejects_path(out)
        planted.append(rejects.with_name(rejects.name + ".partial"))
    for link in planted:
        link.symlink_to(victim)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and _rows(out) > 0
    assert all(link.is_symlink() for link in planted)
    assert _staged_left(out.parent, *planted) == []
    if command == "validate":
        assert _rows(rejects_path(out)) == 1


@commands
def test_a_folder_at_out_partial_is_no_obstacle(
    made: dict[str, Path], tmp_path: Path, command: str
) -> None:
    out, args = _outputs(tmp_path, command, made)
    folder = out.with_name(out.name + ".partial")
    folder.mkdir()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _rows(out) > 0 and folder.is_dir()
    assert _staged_left(out.parent, folder) == []
