"""Hostile input ends in the promised one-line error (exit 2, file and line), never a traceback.

Issue 21, class 9 (files that are not UTF-8, JSON nested 200k deep, a backslash in an image
name, image paths the OS cannot resolve) and the validate side of class 7 (malformed
``<ref:N>`` placeholders, which export would copy into the training text verbatim).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.convert import convert_dataset, load_captions
from rsgpt4v.converters import get_converter
from rsgpt4v.errors import InputError
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.paths import record_path_problem, under_root
from rsgpt4v.schema import Instruction, Record, read_jsonl
from rsgpt4v.validate.checks import Findings, check_regions
from rsgpt4v.validate.run import ValidationOptions, validate_instructions
from tests.conftest import load_fixture_module

runner = CliRunner()
DEEP = "[" * 200_000 + "]" * 200_000  # json's recursion limit is about 1,000


def _one_line_error(result: Result, *where: str) -> str:
    """The single ``error:`` line of a run that exited 2; each of ``where`` must be in it."""
    assert result.exit_code == 2, (result.exit_code, result.exception, result.output)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(w in lines[0] for w in where), (where, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def pipeline(dota_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """DOTA fixture → records (3 images) → counting and grounding instructions."""
    out = tmp_path_factory.mktemp("hostile")
    records = convert_dataset(
        "dota", dota_root / "DOTA", out / "records.jsonl", split="train"
    ).output
    instructions = generate_instructions(
        records, out / "instructions.jsonl", tasks="counting,grounding"
    ).output
    return {"root": dota_root / "DOTA", "records": records, "instructions": instructions}


def _latin1_line_2(source: Path, target: Path) -> Path:
    """``source`` with one byte of line 2 that is not UTF-8 (é in Latin-1)."""
    lines = source.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"train', b'"tr\xe9in', 1)
    assert b"\xe9" in lines[1]
    target.write_bytes(b"".join(lines))
    return target


# -- JSON Lines that are not UTF-8 --------------------------------------------------------------
def test_read_jsonl_names_the_line_that_is_not_utf8(pipeline: dict, tmp_path: Path) -> None:
    path = _latin1_line_2(pipeline["records"], tmp_path / "records.jsonl")
    with pytest.raises(InputError) as caught:
        list(read_jsonl(path, Record))
    assert caught.value.file == str(path) and caught.value.line == 2
    assert "not UTF-8" in caught.value.reason and caught.value.value == b"\xe9"


@pytest.mark.parametrize(
    "command", ["coco", "tile", "validate", "validate-instructions", "export", "evaluate"]
)
def test_stages_reading_jsonl_that_is_not_utf8_exit_2_with_one_line(
    command: str, pipeline: dict, tmp_path: Path
) -> None:
    records = _latin1_line_2(pipeline["records"], tmp_path / "records.jsonl")
    instructions = _latin1_line_2(pipeline["instructions"], tmp_path / "instructions.jsonl")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b'\n{"id": "a", "prediction": "caf\xe9"}\n')
    out, tiles, root = tmp_path / "out", tmp_path / "tiles", pipeline["root"]
    args, bad = {
        "coco": (["coco", records, "-o", out], records),
        "tile": (["tile", records, "-o", out, "--tiles-dir", tiles, "--image-root", root], records),
        "validate": (
            ["validate", pipeline["instructions"], "--records", records, "-o", out],
            records,
        ),
        "validate-instructions": (
            ["validate", instructions, "--records", pipeline["records"], "-o", out],
            instructions,
        ),
        "export": (["export", instructions, "--format", "llava", "-o", out], instructions),
        "evaluate": (["evaluate", predictions, "-o", out, "--no-meteor"], predictions),
    }[command]
    result = runner.invoke(app, [str(a) for a in args])
    _one_line_error(result, f"{bad}:2:", "not UTF-8")


# -- whole JSON files: --captions, captions converters, the shared reader -----------------------
def _convert_train(pipeline: dict, tmp_path: Path) -> list[str]:
    return [
        "convert",
        "dota",
        str(pipeline["root"]),
        "-o",
        str(tmp_path / "r.jsonl"),
        "--split",
        "train",
    ]


def test_captions_file_not_utf8_names_its_line(pipeline: dict, tmp_path: Path) -> None:
    captions = tmp_path / "captions.json"
    captions.write_bytes(b'{\n"P0001.png": ["a plane"],\n"P0002.png": ["caf\xe9"]\n}\n')
    result = runner.invoke(
        app,
        [*_convert_train(pipeline, tmp_path), "--captions", str(captions)],
    )
    _one_line_error(result, f"{captions}:3:", "not UTF-8")


def test_captions_file_nested_too_deeply_is_one_line(pipeline: dict, tmp_path: Path) -> None:
    captions = tmp_path / "captions.json"
    captions.write_text(DEEP, encoding="utf-8")
    result = runner.invoke(
        app,
        [*_convert_train(pipeline, tmp_path), "--captions", str(captions)],
    )
    _one_line_error(result, f"{captions}:1:", "nested too deeply")


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b'{"images": [\n{"filename": "a.jpg",\n "sentences": [{"raw": "caf\xe9"}]}]}', 3, "UTF-8"),
        (b"{\n" + b'"images": ' + DEEP.encode() + b"}", 2, "nested too deeply"),
    ],
    ids=["not-utf8", "deep"],
)
def test_captions_converter_json_errors_name_the_line(
    content: bytes, line: int, reason: str, tmp_path: Path
) -> None:
    root = load_fixture_module("rsicd").make_fixture(tmp_path / "rsicd")
    (root / "dataset_rsicd.json").write_bytes(content)
    with pytest.raises(InputError) as caught:
        list(get_converter("rsicd")(root).records())
    assert caught.value.file == str(root / "dataset_rsicd.json")
    assert caught.value.line == line and reason in caught.value.reason


def test_load_json_accepts_a_bom_and_locates_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": [1, 2]}')
    assert load_json(path) == {"a": [1, 2]}
    path.write_bytes(b'{"a":\n "b",\n "c": "\xff"}')
    with pytest.raises(InputError, match=r"a\.json:3: not UTF-8 text \(.* at column 8\)"):
        load_json(path)
    with pytest.raises(InputError, match=r"captions file not found"):
        load_captions(tmp_path / "missing.json")


# -- image paths --------------------------------------------------------------------------------
def test_under_root_rejects_a_path_the_os_cannot_resolve(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        under_root(tmp_path, "a\x00b.png", file="records.jsonl", entry="x")
    assert caught.value.file == "records.jsonl" and caught.value.value == "a\x00b.png"


def test_a_backslash_is_no_record_path() -> None:
    assert record_path_problem("train/images/P0\\001.png")
    assert record_path_problem("train/images/P0001.png") is None


def test_backslash_in_an_image_name_is_a_named_reject(dota_root: Path, tmp_path: Path) -> None:
    """A valid Linux name, but no record path: rejected by name (--skip-bad keeps the rest)."""
    root = Path(shutil.copytree(dota_root / "DOTA", tmp_path / "DOTA"))
    for path in root.rglob("P0001.*"):
        path.rename(path.with_name(path.name.replace("P0001", "P0\\001")))
    args = ["convert", "dota", str(root), "-o", str(tmp_path / "r.jsonl"), "--split", "train"]
    _one_line_error(runner.invoke(app, args), "P0\\001.txt", "backslash")
    result = runner.invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "2 records" in result.output and "1 rejected" in result.output


# -- class 7: malformed <ref:N> -----------------------------------------------------------------
def _grounding(answer: str) -> Instruction:
    return Instruction(
        id="i",
        record_id="r",
        image="a.png",
        image_size=[64, 48],
        task="grounding",
        source={"generator": "llm", "template": "t"},
        messages=[
            {"role": "user", "content": "<image>\nWhere are the planes?"},
            {"role": "assistant", "content": answer},
        ],
        regions={"0": {"bbox": [10, 5, 20, 10]}, "7": {"bbox": [1, 1, 5, 5]}},
    )


@pytest.mark.parametrize(
    ("answer", "tokens"),
    [
        ("A plane at <ref: 7>.", ["<ref: 7>"]),
        ("A plane at <REF:7>.", ["<REF:7>"]),
        ("A plane at <ref:abc> and <ref:abc>.", ["<ref:abc>"]),
        ("A plane at <ref:007>.", ["<ref:007>"]),
        ("A plane at <Ref:0", ["<Ref:0"]),
        ("Planes at <ref:0> and <ref:7>.", []),
    ],
)
def test_malformed_refs_are_rejected(answer: str, tokens: list[str]) -> None:
    findings = Findings()
    check_regions(_grounding(answer), None, findings)
    malformed = [r for r in findings.rejections if r.code == "malformed_ref"]
    assert [r.value for r in malformed] == tokens


def test_validate_rejects_malformed_refs(pipeline: dict, tmp_path: Path) -> None:
    items = [json.loads(line) for line in pipeline["instructions"].read_text().splitlines()]
    answered = items[:3]
    for item, bad in zip(answered, ("<ref: 999>", "<REF:55>", "<ref:abc>"), strict=True):
        item["messages"][-1]["content"] = f"There is one here: {bad}."
    path = tmp_path / "instructions.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    summary = validate_instructions(
        path,
        pipeline["records"],
        tmp_path / "clean.jsonl",
        options=ValidationOptions(leakage=False),
    )
    rejects = [json.loads(line) for line in summary.rejects_file.read_text().splitlines()]
    assert summary.kept == len(items) - 3
    assert sorted(r["value"] for r in rejects if r["reason"] == "malformed_ref") == sorted(
        ["<ref: 999>", "<REF:55>", "<ref:abc>"]
    )
    kept = (tmp_path / "clean.jsonl").read_text(encoding="utf-8")
    assert not any(bad in kept for bad in ("<ref: 999>", "<REF:55>", "<ref:abc>"))


# -- the other readers: instruct, validate imports, converters, merge-shards, side files --------
def test_instruct_on_records_not_utf8_is_one_line(pipeline: dict, tmp_path: Path) -> None:
    """The class vocabulary pass reads the records first (rsgpt4v.vocabulary)."""
    records = _latin1_line_2(pipeline["records"], tmp_path / "records.jsonl")
    result = runner.invoke(app, ["instruct", str(records), "-o", str(tmp_path / "out.jsonl")])
    _one_line_error(result, f"{records}:2:", "not UTF-8")


@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [
        (b'[\n{"id": "a",\n "image": "caf\xe9.png"}]', ":3:", "not UTF-8"),
        (b"[\n" + DEEP.encode() + b"]", ":2:", "nested too deeply"),
    ],
    ids=["not-utf8", "deep"],
)
def test_validate_on_an_unreadable_json_array_is_one_line(
    content: bytes, where: str, reason: str, pipeline: dict, tmp_path: Path
) -> None:
    llava = tmp_path / "llava.json"
    llava.write_bytes(content)
    args = ["validate", llava, "--records", pipeline["records"], "-o", tmp_path / "out.jsonl"]
    result = runner.invoke(app, [str(a) for a in args])
    _one_line_error(result, f"{llava}{where}", reason)


def test_validate_rejects_a_jsonl_line_nested_too_deeply(pipeline: dict, tmp_path: Path) -> None:
    """One unreadable line of an imported JSON Lines file is a rejection; the rest is read."""
    record = json.loads(pipeline["records"].read_text(encoding="utf-8").splitlines()[0])
    good = {
        "id": "a",
        "image": record["image"]["path"],
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image."},
            {"from": "gpt", "value": "An airport seen from above."},
        ],
    }
    llava = tmp_path / "llava.jsonl"
    llava.write_text(json.dumps(good) + "\n" + DEEP + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["validate", llava, "--records", pipeline["records"], "-o", out, "--no-leakage"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").open()]
    assert [(r["reason"], r["line"]) for r in rejects] == [("schema", 2)]
    assert "nested too deeply" in rejects[0]["message"]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1


@pytest.mark.parametrize("dataset", ["coco", "xview"])
@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b'{"images": [],\n "info": "caf\xe9"}', 2, "not UTF-8"),
        (b'{"images":\n' + DEEP.encode() + b"}", 2, "nested too deeply"),
    ],
    ids=["not-utf8", "deep"],
)
def test_convert_on_an_unreadable_annotation_file_is_one_line(
    dataset: str, content: bytes, line: int, reason: str, tmp_path: Path
) -> None:
    root = load_fixture_module(dataset).make_fixture(tmp_path / dataset)
    labels = {
        "coco": root / "annotations" / "instances_train.json",
        "xview": root / "xView_train.geojson",
    }[dataset]
    labels.write_bytes(content)
    args = ["convert", dataset, str(root), "-o", str(tmp_path / "r.jsonl"), "--split", "train"]
    _one_line_error(runner.invoke(app, args), f"{labels}:{line}:", reason)


@pytest.mark.parametrize("records", [False, True], ids=["by-id", "records-order"])
def test_merge_shards_on_a_part_not_utf8_is_one_line(
    records: bool, pipeline: dict, tmp_path: Path
) -> None:
    instructions = pipeline["instructions"].read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "part-0.jsonl", tmp_path / "part-1.jsonl"
    first.write_bytes(b"".join(instructions[:1]))
    _latin1 = b"".join(instructions[1:]).replace(b'"counting', b'"co\xfcnting', 1)
    second.write_bytes(_latin1)
    assert b"\xfc" in _latin1.splitlines()[0]
    args = ["merge-shards", str(first), str(second), "-o", str(tmp_path / "merged.jsonl")]
    if records:
        args += ["--records", str(_latin1_line_2(pipeline["records"], tmp_path / "r.jsonl"))]
        where = f"{tmp_path / 'r.jsonl'}:2:"  # the records file is read first
    else:
        where = f"{second}:1:"
    _one_line_error(runner.invoke(app, args), where, "not UTF-8")


def test_merge_shards_on_a_part_nested_too_deeply_is_one_line(
    pipeline: dict, tmp_path: Path
) -> None:
    part = tmp_path / "part-0.jsonl"
    part.write_bytes(pipeline["instructions"].read_bytes() + DEEP.encode() + b"\n")
    lines = len(pipeline["instructions"].read_bytes().splitlines())
    args = ["merge-shards", str(part), "-o", str(tmp_path / "merged.jsonl")]
    _one_line_error(runner.invoke(app, args), f"{part}:{lines + 1}:", "nested too deeply")


def test_instruct_mix_file_not_utf8_is_one_line(pipeline: dict, tmp_path: Path) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_bytes(b"tasks:\n  counting: {weight: 2}\n  # caf\xe9\n")
    args = ["instruct", str(pipeline["records"]), "-o", str(tmp_path / "out.jsonl")]
    _one_line_error(runner.invoke(app, [*args, "--mix", str(mix)]), f"{mix}:3:", "not UTF-8")


def test_instruct_llm_price_table_not_utf8_is_one_line(pipeline: dict, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_bytes(b"version: '2024'\nmodels:\n  caf\xe9: {input: 1, output: 2}\n")
    args = [
        "instruct", str(pipeline["records"]), "-o", str(tmp_path / "out.jsonl"),
        "--generator", "llm", "--model", "gpt-4o", "--image-root", str(pipeline["root"]),
        "--api-key-env", "RSGPT4V_HOSTILE_NO_KEY", "--prices", str(prices),
    ]  # fmt: skip
    _one_line_error(runner.invoke(app, args), f"{prices}:3:", "not UTF-8")


@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [(b'{\n"model": "caf\xe9"}', ":2:", "not UTF-8"), (DEEP.encode(), ":1:", "nested too deeply")],
    ids=["not-utf8", "deep"],
)
def test_evaluate_on_an_unreadable_run_file_is_one_line(
    content: bytes, where: str, reason: str, tmp_path: Path
) -> None:
    predictions = tmp_path / "predictions.jsonl"
    item = {
        "id": "a",
        "record_id": "r",
        "image": "a.png",
        "image_size": [8, 8],
        "task": "classification",
        "metric": "classification",
        "question": "What is it?",
        "references": ["airport"],
        "label": "airport",
        "prediction": "airport",
    }
    predictions.write_text(json.dumps(item) + "\n", encoding="utf-8")
    run = tmp_path / "predictions.jsonl.run.json"
    run.write_bytes(content)
    args = ["evaluate", str(predictions), "-o", str(tmp_path / "out"), "--no-meteor"]
    _one_line_error(runner.invoke(app, args), f"{run}{where}", reason)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b'{\n"rs": {"file_name": "caf\xe9.json"}}', "not UTF-8"), (DEEP.encode(), "too deeply")],
    ids=["not-utf8", "deep"],
)
def test_export_sharegpt_on_an_unreadable_dataset_info_is_one_line(
    content: bytes, reason: str, pipeline: dict, tmp_path: Path
) -> None:
    info = tmp_path / "dataset_info.json"
    info.write_bytes(content)
    out = tmp_path / "rs.json"
    args = ["export", str(pipeline["instructions"]), "--format", "sharegpt", "-o", str(out)]
    _one_line_error(runner.invoke(app, args), f"{info}:", reason, "fix or remove it")
    assert not out.exists()
