"""Converters are found by name: built-in ones, and users' own through entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import available_converters, get_converter
from rsgpt4v.errors import ConverterNotFoundError

PLUGIN = """
from rsgpt4v.converters import Converter
from rsgpt4v.schema import ImageInfo, Record


class InHouseConverter(Converter):
    NAME = "inhouse"
    DESCRIPTION = "An analyst's in-house CSV of image sizes."
    LAYOUT = "ROOT/sizes.csv with name,width,height lines"

    def records(self):
        for line in (self.root / "sizes.csv").read_text().splitlines():
            name, width, height = line.split(",")
            yield Record(id=f"inhouse/all/{name}", dataset="inhouse", split="all",
                         image=ImageInfo(path=name, width=int(width), height=int(height)))
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a one-module package with an entry point, as `pip install` would."""
    (tmp_path / "inhouse_converter.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "inhouse_converter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: inhouse-converter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[rsgpt4v.converters]\ninhouse = inhouse_converter:InHouseConverter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("inhouse_converter", None)


def test_builtin_converters_declare_their_contract() -> None:
    for name, converter in available_converters().items():
        assert name == converter.NAME
        assert converter.DESCRIPTION and converter.LAYOUT


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConverterNotFoundError, match=r"unknown dataset 'dotta'; known: .*dota"):
        get_converter("dotta")


def test_entry_point_converter_works_end_to_end(plugin: Path, tmp_path: Path) -> None:
    assert get_converter("inhouse").NAME == "inhouse"
    data = tmp_path / "data"
    data.mkdir()
    (data / "sizes.csv").write_text("a.tif,10,20\nb.tif,30,40\n")
    result = CliRunner().invoke(app, ["convert", "inhouse", str(data), "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 records")
    assert "inhouse" in CliRunner().invoke(app, ["datasets"]).output
