"""Benchmark adapters map converter records to items; predictions are scored and compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.converters import ProblemLog, get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.evaluate.benchmarks import benchmark_items
from rsgpt4v.evaluate.predict import predict_benchmark
from rsgpt4v.evaluate.predictions import read_predictions
from rsgpt4v.evaluate.references import render_text
from rsgpt4v.evaluate.results import compare_runs, evaluate_predictions
from rsgpt4v.families import BoxConvention
from rsgpt4v.schema import write_jsonl
from tests.conftest import load_fixture_module

runner = CliRunner()


def _records_file(fixture: str, root_name: str, converter: str, out: Path) -> Path:
    root = load_fixture_module(fixture).make_fixture(out / "data") / root_name
    records = get_converter(converter)(root, log=ProblemLog(skip_bad=True)).records()
    write_jsonl(out / "records.jsonl", records)
    return out / "records.jsonl"


@pytest.fixture(scope="module")
def rsvqa_lr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _records_file("rsvqa", "RSVQA_LR", "rsvqa-lr", tmp_path_factory.mktemp("lr"))


def test_rsvqa_test_split_gives_one_item_per_qa_with_its_type(rsvqa_lr: Path) -> None:
    items = list(benchmark_items("rsvqa-lr", rsvqa_lr))
    assert [(i.record_id, i.question_type, i.references) for i in items] == [
        ("rsvqa-lr/test/2", "presence", ["yes"]),
        ("rsvqa-lr/test/3", "count", ["3"]),
    ]
    assert items[0].question.startswith("Is a road present?\n")
    assert len(list(benchmark_items("rsvqa-lr", rsvqa_lr, split="train"))) == 4


def test_a_benchmark_over_other_records_names_what_it_found(rsvqa_lr: Path) -> None:
    with pytest.raises(InputError, match=r"rsvqa-lr/test \(2\)"):
        list(benchmark_items("dior-rsvg", rsvqa_lr))
    with pytest.raises(InputError, match="unknown benchmark"):
        list(benchmark_items("nope", rsvqa_lr))


def test_rsvqa_hr_philadelphia_split(tmp_path: Path) -> None:
    records = _records_file("rsvqa", "RSVQA_HR", "rsvqa-hr", tmp_path)
    (item,) = benchmark_items("rsvqa-hr", records, split="test_phili")
    assert (item.question_type, item.references) == ("count", ["4"])


def test_dior_rsvg_items_carry_the_expressions_box(tmp_path: Path) -> None:
    records = _records_file("dior-rsvg", "DIOR_RSVG", "dior-rsvg", tmp_path)
    items = list(benchmark_items("dior-rsvg", records))
    assert len(items) == 2  # test.txt lists objects 0 and 4
    for item in items:
        (region,) = item.regions.values()
        x, y, w, h = region.bbox
        assert item.boxes == [[x, y, x + w, y + h]]
        assert item.metric == "grounding" and "described as:" in item.question
        assert render_text(item.references[0], item, BoxConvention("pixel")) == (
            f"[{round(x)}, {round(y)}, {round(x + w)}, {round(y + h)}]"
        )


def test_caption_items_have_every_caption_as_reference(tmp_path: Path) -> None:
    records = _records_file("rsicd", "", "rsicd", tmp_path)
    (item,) = benchmark_items("rsicd", records)  # beach_9.jpg has no image file
    assert item.references == ["It is a piece of bare land.", "A piece of yellow bare land.",
                               "Bare land."]  # fmt: skip
    assert item.metric == "caption"


def _oracle(items_file: Path, out: Path, wrong: set[str] = frozenset()) -> Path:
    """Predictions of another system: only id and answer, the reference itself unless wrong."""
    lines = []
    for item in read_predictions(items_file):
        answer = "I do not know" if item.id in wrong else item.references[0]
        lines.append(json.dumps({"id": item.id, "prediction": answer, "model": "oracle"}))
    out.write_text("\n".join(lines) + "\n")
    return out


def test_other_systems_answers_join_items_by_id_and_runs_compare(
    rsvqa_lr: Path, tmp_path: Path
) -> None:
    items = tmp_path / "items.jsonl"
    summary = predict_benchmark("rsvqa-lr", rsvqa_lr, items, model_dir=None)
    assert summary.written == 2 and summary.run_file.is_file()
    assert all(p.prediction is None for p in read_predictions(items))
    perfect = evaluate_predictions(
        _oracle(items, tmp_path / "a.jsonl"), tmp_path / "a", items=items
    )
    vqa = perfect["tasks"]["vqa"]
    assert vqa["accuracy"] == 1.0 and vqa["n"] == 2
    assert perfect["scoring"]["vqa"]["bin_counts"] is True  # the RSVQA-LR rule
    assert perfect["run"]["data"]["items"]["sha256"]
    assert perfect["run"]["data"]["source"]["path"] == str(rsvqa_lr)  # from the items' run file
    assert (perfect["run"]["model"], perfect["run"]["split"]) == ("oracle", "test")
    wrong = {"rsvqa-lr/test/2#vqa-0"}
    half = evaluate_predictions(
        _oracle(items, tmp_path / "b.jsonl", wrong), tmp_path / "b", items=items
    )
    assert half["tasks"]["vqa"]["per_type"]["presence"]["accuracy"] == 0.0
    assert half["tasks"]["vqa"]["accuracy"] == 0.5
    markdown, table = compare_runs([tmp_path / "a", tmp_path / "b" / "results.json"])
    assert table["rows"]["vqa / accuracy"] == [1.0, 0.5]
    assert "| vqa / accuracy | 1.0000 | 0.5000 |" in markdown
    assert "## vqa (vqa)" in (tmp_path / "a" / "results.md").read_text()


def test_unknown_prediction_ids_and_missing_answers(rsvqa_lr: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    predict_benchmark("rsvqa-lr", rsvqa_lr, items, model_dir=None)
    stray = tmp_path / "stray.jsonl"
    stray.write_text('{"id": "nope", "prediction": "yes"}\n')
    with pytest.raises(InputError, match="name no item"):
        evaluate_predictions(stray, tmp_path / "out", items=items)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "rsvqa-lr/test/2#vqa-0", "prediction": "yes"}\n{"prediction": 3}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not a valid AnswerLine: id"):
        evaluate_predictions(bad, tmp_path / "out", items=items)
    one = tmp_path / "one.jsonl"
    one.write_text('{"id": "rsvqa-lr/test/2#vqa-0", "prediction": "Yes."}\n')
    result = evaluate_predictions(one, tmp_path / "out", items=items)
    assert result["tasks"]["vqa"]["accuracy"] == 0.5  # the unanswered item counts as wrong
    assert result["tasks"]["vqa"]["unanswered"] == 1


def test_cli_items_only_evaluate_and_compare(rsvqa_lr: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    result = runner.invoke(
        app, ["predict", str(rsvqa_lr), "--benchmark", "rsvqa-lr", "--items-only", "-o", str(items)]
    )
    assert result.exit_code == 0, result.output
    assert "2 questions" in result.output
    answers = _oracle(items, tmp_path / "answers.jsonl")
    result = runner.invoke(
        app, ["evaluate", str(answers), "--items", str(items), "-o", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    assert "vqa (vqa, n=2): accuracy 1.0000" in result.output
    result = runner.invoke(
        app,
        [
            "compare-runs",
            str(tmp_path / "run"),
            str(tmp_path / "run"),
            "-o",
            str(tmp_path / "c.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.md.json").is_file()
    result = runner.invoke(app, ["predict", str(rsvqa_lr), "-o", str(items)])
    assert result.exit_code == 2 and "--model" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "file not found" in result.output


def test_max_side_is_refused_with_pixel_box_styles(rsvqa_lr: Path, tmp_path: Path) -> None:
    from rsgpt4v.evaluate.predict import GenerationSettings

    with pytest.raises(InputError, match="max-side"):
        predict_benchmark(
            "rsvqa-lr", rsvqa_lr, tmp_path / "p.jsonl", model_dir=tmp_path, image_root=tmp_path,
            boxes=BoxConvention("qwen25vl"), settings=GenerationSettings(max_side=256),
        )  # fmt: skip
