from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.schema import Instruction, Record, read_jsonl

runner = CliRunner()


COMMANDS = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]


def test_the_command_list_is_complete() -> None:
    assert {"convert", "instruct", "validate", "export", "finetune", "evaluate"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_help_shows_install_extras_and_names_docs_that_exist() -> None:
    """Rich markup must not swallow ``[ray]``; every docs page a help text names must exist."""
    repo = Path(__file__).parents[1]
    result = runner.invoke(app, ["instruct", "--help"], terminal_width=200)
    assert "'rsgpt4v[ray]'" in result.output
    for command in COMMANDS:
        text = runner.invoke(app, [command, "--help"], terminal_width=200).output
        for page in re.findall(r"docs/[\w.-]+\.md", text):
            assert (repo / page).is_file(), f"{command} --help names {page}"


def test_datasets_lists_the_dota_converters() -> None:
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0
    for name in ("dota", "dota-v1.0", "dota-v1.5", "dota-v2.0"):
        assert name in result.output


def test_convert_instruct_export(dota_root: Path, tmp_path: Path) -> None:
    records, instructions, llava = (tmp_path / n for n in ("r.jsonl", "i.jsonl", "l.json"))
    result = runner.invoke(
        app, ["convert", "dota", str(dota_root / "DOTA"), "-o", str(records), "--split", "train"]
    )
    assert result.exit_code == 0, result.output
    assert "3 records (0 without object labels), 5 objects in 4 classes" in result.output
    result = runner.invoke(
        app, ["instruct", str(records), "-o", str(instructions), "--tasks", "counting,grounding"]
    )
    assert result.exit_code == 0, result.output
    # 4 classes counted; boxes listed only for the 2 that DOTA labels exhaustively (not ships
    # and small vehicles: docs/instructions.md, Label completeness)
    assert len(list(read_jsonl(instructions, Instruction))) == 6
    result = runner.invoke(
        app,
        [
            "export",
            str(instructions),
            "--format",
            "llava",
            "--boxes",
            "qwen2vl",
            "-o",
            str(llava),
            "--image-root",
            str(dota_root / "DOTA"),
        ],
    )
    assert result.exit_code == 0, result.output
    items = json.loads(llava.read_text())
    assert len(items) == 6 and any("<|box_start|>" in json.dumps(i) for i in items)


def test_bad_input_exits_2_with_one_line(dota_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["convert", "dota", str(dota_root / "DOTA"), "-o", str(tmp_path / "r.jsonl")]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "P0004.txt:4" in lines[0]
    assert "Traceback" not in result.output and not (tmp_path / "r.jsonl").exists()


def test_debug_shows_the_exception(dota_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["--debug", "convert", "dota", str(dota_root / "DOTA"), "-o", str(tmp_path / "r.jsonl")],
    )
    assert result.exit_code != 0 and result.exception is not None
    assert "P0004.txt" in str(result.exception)


def test_skip_bad_reports_the_rejects_file(dota_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["convert", "dota", str(dota_root / "DOTA"), "-o", str(tmp_path / "r.jsonl"), "--skip-bad"],
    )
    assert result.exit_code == 0
    assert f"1 rejected items listed in {tmp_path / 'r.jsonl.rejects.jsonl'}" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["convert", "nosuch", "."],
        ["convert", "dota", "/nonexistent"],
        ["instruct", "missing.jsonl"],
        ["export", "missing.jsonl"],
        ["instruct", "missing.jsonl", "--generator", "gpt"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_bad_option_syntax(dota_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "convert",
            "dota",
            str(dota_root / "DOTA"),
            "-o",
            str(tmp_path / "r.jsonl"),
            "-O",
            "labels",
        ],
    )
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_demo_outputs_are_ready_for_training(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    records = list(read_jsonl(out / "records.jsonl", Record))
    assert len(records) == 5 and all(r.image.crs == "EPSG:32633" for r in records)
    assert all(r.image.gsd == pytest.approx(0.5) and r.image.transform for r in records)
    assert sum(len(r.captions) for r in records) == 10
    items = json.loads((out / "llava.json").read_text())
    instructions = list(read_jsonl(out / "instructions.jsonl", Instruction))
    assert len(items) == len(instructions) > 0
    assert {"brief_caption", "counting", "grounding", "geographic"} <= {
        i.task for i in instructions
    }
    for item in items:
        assert (out / item["image"]).is_file()
        first = item["conversations"][0]
        assert first["from"] == "human" and first["value"].count("<image>") == 1
        assert sum(t["value"].count("<image>") for t in item["conversations"]) == 1
    for path in ("records.jsonl", "instructions.jsonl", "llava.json"):
        assert str(out / path) in result.output
    # the command it prints to switch the LLM on runs as printed (a dry run: no key, no call)
    (command,) = [line for line in result.output.splitlines() if "--generator llm" in line]
    words = shlex.split(command)
    assert words[0] == "rsgpt4v"
    printed = runner.invoke(app, words[1:], env={"OPENAI_API_KEY": ""})
    assert printed.exit_code == 0 and "dry run: no request was sent" in printed.output
