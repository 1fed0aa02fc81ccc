"""Command-line options come from the stage settings models: a flag, its help and its checks are
declared once, on the settings field (rsgpt4v.settings.option, rsgpt4v.cli_options)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from pydantic import field_validator
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.cli_options import FROM_OPTIONS, settings_options
from rsgpt4v.convert_settings import ConvertSettings
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.export_settings import ExportSettings
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.instruct.settings import RulesSettings
from rsgpt4v.settings import StageSettings, flags_of, key_values, option
from rsgpt4v.tile_settings import TileSettings
from rsgpt4v.validate.settings import ValidationOptions

runner = CliRunner()


class Knobs(StageSettings):
    size: int = option(8, "--size", help="How big.", ge=1)
    name: str | None = option(None, "--name", help="What it is called.")
    pairs: dict[str, str] = option({}, "-P", "--pair", help="KEY=VALUE.", cli_type=list[str])
    hidden: int = 3  # not an option: set by code only

    _pairs = field_validator("pairs", mode="before")(key_values)


class More(StageSettings):
    size: int = option(8, "--size", help="How big.", ge=1)  # the same option, shared
    loud: bool = option(False, "--loud/--quiet", help="Say more.")


def _app(seen: list) -> typer.Typer:
    demo = typer.Typer()

    def refuse(error: RsgptError) -> None:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)

    @demo.command()
    @settings_options(refuse, knobs=Knobs, more=More)
    def run(
        what: str = typer.Argument(...), knobs: Knobs = FROM_OPTIONS, more: More = FROM_OPTIONS
    ) -> None:
        seen.append((what, knobs, more))

    return demo


def test_each_option_field_is_an_option_with_its_help_and_default() -> None:
    seen: list = []
    demo = _app(seen)
    help_text = runner.invoke(demo, ["--help"], terminal_width=200).output
    for flag, text in (
        ("--size", "How big."),
        ("--name", "What it is called."),
        ("--pair", "KEY="),
    ):
        assert flag in help_text and text in help_text
    assert "--hidden" not in help_text
    result = runner.invoke(demo, ["x", "--size", "5", "-P", "a=1", "--pair", "b = 2", "--loud"])
    assert result.exit_code == 0, result.output
    ((what, knobs, more),) = seen
    assert what == "x" and knobs == Knobs(size=5, pairs={"a": "1", "b": "2"})
    assert more == More(size=5, loud=True)  # one --size sets both models
    seen.clear()
    assert runner.invoke(demo, ["y"]).exit_code == 0
    assert seen == [("y", Knobs(), More())]


@pytest.mark.parametrize(
    ("args", "flag", "words"),
    [
        (["--size", "0"], "'--size'", "greater than or equal to 1"),
        (["-P", "novalue"], "'-P'/'--pair'", "expected KEY=VALUE"),
    ],
)
def test_a_refused_value_is_a_usage_error_naming_its_flag(args, flag, words) -> None:
    result = runner.invoke(_app([]), ["x", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for {flag}" in result.output and words in result.output


def test_a_stage_check_is_the_cli_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["tile", str(tmp_path / "r.jsonl"), "-o", str(tmp_path / "t.jsonl"), "--tiles-dir",
         str(tmp_path), "--image-root", str(tmp_path), "--size", "100", "--gap", "100"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "error: gap must be at least 0 and less than the size (100)" in result.output
    with pytest.raises(InputError, match="gap must be"):
        TileSettings(size=100, gap=100)  # the same check, in Python


@pytest.mark.parametrize(
    ("command", "model"),
    [
        ("convert", ConvertSettings),
        ("tile", TileSettings),
        ("instruct", RulesSettings),
        ("instruct", LlmSettings),
        ("validate", ValidationOptions),
        ("export", ExportSettings),
    ],
)
def test_every_settings_option_is_on_its_command(command: str, model) -> None:
    """Adding an option to a stage is adding a field: the command has it, with the field's help
    and default."""
    params = {param.name: param for param in typer.main.get_command(app).commands[command].params}
    for name, info in model.model_fields.items():
        flags = flags_of(model, name)
        if not flags:
            continue
        param = params[name]
        assert set(param.opts) == {flag.split("/")[0] for flag in flags}
        assert param.help == info.description
        if info.json_schema_extra["cli_type"] is None:  # else read as another type
            assert param.default == info.default
