"""Issue 21, classes 2, 10 and compare-runs of 9: rejects that belong to one output, errors
that name the line to fix, and malformed inputs refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.convert import convert_dataset
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.problems import Problem, rejects_path, write_rejects
from rsgpt4v.schema import Instruction, Message, Region, Source, write_jsonl
from rsgpt4v.validate.run import ValidationOptions, validate_instructions

runner = CliRunner()


@pytest.fixture(scope="module")
def pipeline(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sample → records → rule instructions, as `rsgpt4v demo` makes them."""
    out = tmp_path_factory.mktemp("rejects")
    records = convert_dataset(
        "dota", sample_root, out / "records.jsonl", split="train", captions=None
    ).output
    instructions = generate_instructions(records, out / "instructions.jsonl").output
    return {"root": sample_root, "records": records, "instructions": instructions}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _error_line(result) -> str:
    """The CLI's one-line error (exit 2, no traceback)."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def _with_bad_ref_on_line_2(pipeline: dict[str, Path], path: Path) -> str:
    """The pipeline's instructions with line 2 pointing at region 99; returns its id."""
    items = _lines(pipeline["instructions"])
    items[1]["messages"][-1]["content"] += " See <ref:99>."
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return items[1]["id"]


# --- class 2: a rejects file belongs to one output ---------------------------------------------


def test_rejects_are_named_from_the_whole_output_name() -> None:
    assert rejects_path("out/train.jsonl") == Path("out/train.jsonl.rejects.jsonl")
    assert rejects_path("out/train.json") == Path("out/train.json.rejects.jsonl")


def test_validation_rejects_survive_an_export_to_the_same_stem(
    pipeline: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "instructions.jsonl"
    bad_id = _with_bad_ref_on_line_2(pipeline, source)
    train = tmp_path / "train.jsonl"
    result = runner.invoke(
        app,
        ["validate", str(source), "--records", str(pipeline["records"]), "-o", str(train)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    validation_rejects = tmp_path / "train.jsonl.rejects.jsonl"
    assert f"rejections listed in {validation_rejects}" in result.output
    kept = validation_rejects.read_text(encoding="utf-8")
    assert bad_id in kept

    # the same data exported beside it, with its own reject (the bad line) and none (the clean)
    for exported, skip in ((source, ["--skip-bad"]), (train, [])):
        result = runner.invoke(
            app, ["export", str(exported), "-o", str(tmp_path / "train.json"), *skip]
        )
        assert result.exit_code == 0, result.output
        assert validation_rejects.read_text(encoding="utf-8") == kept

    result = runner.invoke(
        app, ["export", str(source), "-o", str(tmp_path / "train.json"), "--skip-bad"]
    )
    export_rejects = tmp_path / "train.json.rejects.jsonl"
    assert f"1 rejected instructions listed in {export_rejects}" in result.output
    assert [(r["line"], r["value"]) for r in _lines(export_rejects)] == [(2, bad_id)]
    assert validation_rejects.read_text(encoding="utf-8") == kept


def test_a_failed_rejects_write_leaves_the_earlier_file_whole(tmp_path: Path) -> None:
    output = tmp_path / "records.jsonl"
    first = write_rejects(output, [Problem("bad line", "in.txt", 3, "x")])
    before = first.read_text(encoding="utf-8")

    class Unwritable(Problem):
        def as_dict(self) -> dict[str, object]:
            raise KeyboardInterrupt  # a kill halfway through the write

    with pytest.raises(KeyboardInterrupt):
        write_rejects(output, [Problem("other", "in.txt", 4), Unwritable("x", "in.txt")])
    assert first.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl.rejects.jsonl"]


def test_a_failed_validation_leaves_the_earlier_rejects(
    pipeline: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "instructions.jsonl"
    _with_bad_ref_on_line_2(pipeline, source)
    clean, options = tmp_path / "clean.jsonl", ValidationOptions(leakage=False)
    summary = validate_instructions(source, pipeline["records"], clean, options=options)
    before = summary.rejects_file.read_text(encoding="utf-8")

    def killed(_: str):
        def wrap(items, _total):
            yield next(iter(items))
            raise KeyboardInterrupt

        return wrap

    with pytest.raises(KeyboardInterrupt):
        validate_instructions(source, pipeline["records"], clean, options=options, progress=killed)
    assert summary.rejects_file.read_text(encoding="utf-8") == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


# --- class 10: errors and rejects name the line ------------------------------------------------


def _instruction(id_: str, answer: str) -> Instruction:
    return Instruction(
        id=id_,
        record_id="r",
        image="images/a.png",
        image_size=[200, 100],
        task="grounding",
        source=Source(generator="rules", template="grounding/v1"),
        messages=[
            Message(role="user", content="<image>\nWhere is the ship?"),
            Message(role="assistant", content=answer),
        ],
        regions={"0": Region(bbox=[20, 10, 40, 30])},
    )


def test_export_reject_names_the_instruction_line(tmp_path: Path) -> None:
    source = tmp_path / "instructions.jsonl"
    write_jsonl(source, [_instruction("good", "<ref:0>."), _instruction("bad", "<ref:7>.")])
    result = runner.invoke(
        app, ["export", str(source), "-o", str(tmp_path / "llava.json"), "--skip-bad"]
    )
    assert result.exit_code == 0, result.output
    (reject,) = _lines(tmp_path / "llava.json.rejects.jsonl")
    assert (reject["file"], reject["line"], reject["value"]) == (str(source), 2, "bad")

    error = _error_line(runner.invoke(app, ["export", str(source), "-o", str(tmp_path / "x.json")]))
    assert f"{source}:2:" in error and "region 7" in error

    # blank lines count, as in every other stage's line numbers
    text = source.read_text(encoding="utf-8").splitlines()
    source.write_text("\n" + text[0] + "\n\n\n" + text[1] + "\n", encoding="utf-8")
    runner.invoke(app, ["export", str(source), "-o", str(tmp_path / "llava.json"), "--skip-bad"])
    assert _lines(tmp_path / "llava.json.rejects.jsonl")[0]["line"] == 5


def _records_with_image(pipeline: dict[str, Path], tmp_path: Path, image: str) -> tuple[Path, str]:
    """The pipeline's records with line 2's image path replaced; returns the file and record id."""
    lines = pipeline["records"].read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[1])
    record["image"]["path"] = image
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n", encoding="utf-8")
    return path, record["id"]


@pytest.mark.parametrize(
    ("image", "reason"),
    [("../../outside.tif", "leaves the image root"), ("images/missing.tif", "cannot read image")],
)
def test_instruct_image_errors_name_the_record_line(
    pipeline: dict[str, Path], tmp_path: Path, image: str, reason: str
) -> None:
    records, record_id = _records_with_image(pipeline, tmp_path, image)
    args = ["instruct", str(records), "-o", str(tmp_path / "i.jsonl")]
    error = _error_line(runner.invoke(app, [*args, "--image-root", str(pipeline["root"])]))
    assert f"error: {records}:2 [{record_id}]: " in error and reason in error


@pytest.mark.parametrize(
    ("image", "reason"),
    [("../../outside.tif", "leaves the image root"), ("images/missing.tif", "cannot read image")],
)
def test_validate_image_errors_name_the_record_line(
    pipeline: dict[str, Path], tmp_path: Path, image: str, reason: str
) -> None:
    records, record_id = _records_with_image(pipeline, tmp_path, image)
    args = ["validate", str(pipeline["instructions"]), "--records", str(records)]
    result = runner.invoke(
        app, [*args, "-o", str(tmp_path / "c.jsonl"), "--image-root", str(pipeline["root"])]
    )
    error = _error_line(result)
    assert f"error: {records}:2 [{record_id}]: " in error and reason in error


def _items(path: Path) -> Path:
    item = {
        "id": "q1",
        "record_id": "r",
        "image": "a.png",
        "image_size": [10, 10],
        "task": "vqa",
        "metric": "vqa",
        "question": "Is there a ship?",
        "references": ["yes"],
    }
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("answers", ["", "\n\n", '{"id": "q1"}\n'])
def test_evaluate_refuses_answers_that_hold_no_prediction(tmp_path: Path, answers: str) -> None:
    items = _items(tmp_path / "items.jsonl")
    predictions = tmp_path / "answers.jsonl"
    predictions.write_text(answers, encoding="utf-8")
    result = runner.invoke(
        app, ["evaluate", str(predictions), "--items", str(items), "-o", str(tmp_path / "out")]
    )
    error = _error_line(result)
    assert f"error: {predictions}: no predictions to evaluate" in error
    assert not (tmp_path / "out" / "results.json").exists()


def test_evaluate_refuses_the_items_file_as_predictions(tmp_path: Path) -> None:
    items = _items(tmp_path / "items.jsonl")
    result = runner.invoke(app, ["evaluate", str(items), "-o", str(tmp_path / "out")])
    assert f"error: {items}: no predictions to evaluate" in _error_line(result)


# --- class 9 (compare-runs): a malformed results file is one line naming it ---------------------

GOOD_RESULTS = {
    "run": {"name": "m", "benchmark": "b", "data": {"source": {"sha256": "ab" * 32}}},
    "items": 1,
    "tasks": {"vqa": {"metric": "vqa", "accuracy": 0.5}},
}


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        b'{"run": {"name": "m"}, "tasks": [1]}',
        b'{"run": {"name": "m"}, "tasks": {"vqa": 0.5}}',
        b'{"run": {}, "tasks": {}}',
        b'{"run": "m", "tasks": {}}',
        b"[" * 100_000,
    ],
)
def test_compare_runs_on_a_malformed_file_exits_2_naming_it(tmp_path: Path, content: bytes):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD_RESULTS), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    error = _error_line(runner.invoke(app, ["compare-runs", str(good), str(bad)]))
    assert error.startswith(f"error: {bad}")


def test_compare_runs_reads_optional_fields_leniently(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.json"
    sparse.write_text('{"run": {"name": "m", "data": {"source": "x"}}, "tasks": {}}')
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD_RESULTS), encoding="utf-8")
    result = runner.invoke(app, ["compare-runs", str(good), str(sparse)])
    assert result.exit_code == 0, result.output
    assert "| data sha256 | abababababab | - |" in result.output
