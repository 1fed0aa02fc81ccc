"""`validate`: a clean pipeline set passes untouched; each planted fault is caught, with reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.convert import convert_dataset
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.validate.checks import REASONS
from rsgpt4v.validate.run import ValidationOptions, validate_instructions

runner = CliRunner()


@pytest.fixture(scope="module")
def clean_set(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo path: sample → convert → every rule task (as `rsgpt4v demo` runs it)."""
    out = tmp_path_factory.mktemp("validate")
    records = convert_dataset(
        "dota",
        sample_root,
        out / "records.jsonl",
        split="train",
        captions=sample_root / "captions.json",
    ).output
    instructions = generate_instructions(
        records, out / "instructions.jsonl", image_root=sample_root
    ).output
    return {"root": sample_root, "records": records, "instructions": instructions}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def _rejects(summary) -> list[dict]:
    return _lines(summary.rejects_file) if summary.rejects_file else []


def _plant(clean_set: dict[str, Path], tmp_path: Path, change) -> tuple[str, list[dict]]:
    """Apply ``change`` to a copy of the clean set; return the changed id and the rejects."""
    items = _lines(clean_set["instructions"])
    changed = change(items)
    path = _write(tmp_path / "instructions.jsonl", items)
    summary = validate_instructions(
        path,
        clean_set["records"],
        tmp_path / "clean.jsonl",
        options=ValidationOptions(leakage=False),
    )
    assert summary.instructions == len(items)
    assert summary.kept == len(items) - 1
    assert len(_lines(tmp_path / "clean.jsonl")) == len(items) - 1
    return changed, _rejects(summary)


def _first(items: list[dict], task: str, needle: str = "") -> dict:
    return next(i for i in items if i["task"] == task and needle in i["messages"][-1]["content"])


def test_clean_pipeline_set_passes_untouched(clean_set: dict[str, Path], tmp_path: Path) -> None:
    summary = validate_instructions(
        clean_set["instructions"],
        clean_set["records"],
        tmp_path / "clean.jsonl",
        options=ValidationOptions(image_root=clean_set["root"]),
    )
    assert summary.rejected == 0 and summary.reasons == {}
    assert summary.leakage_checked and summary.leaked_records == 0
    assert summary.rejects_file is None
    assert not (tmp_path / "clean.jsonl.rejects.jsonl").exists()
    assert _lines(tmp_path / "clean.jsonl") == _lines(clean_set["instructions"])
    assert summary.kept == summary.instructions > 100


def test_wrong_count_is_caught(clean_set: dict[str, Path], tmp_path: Path) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "counting", "at least 9 small vehicles")
        item["messages"][1]["content"] = "There are 10 small vehicles in the image."
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("count_mismatch", changed, "10")
    ]
    assert changed in rejects[0]["message"] and "10 small vehicles" in rejects[0]["message"]
    assert "the labels have 9" in rejects[0]["message"]


def test_wrong_count_in_words_and_synonyms_is_caught(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "counting", "at least 9 small vehicles")
        item["messages"][1]["content"] = "I can see twelve cars."
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("count_mismatch", changed, "12")
    ]


def test_more_objects_than_labelled_in_any_answer_is_caught(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "detailed_description", "9 small vehicles")
        text = item["messages"][1]["content"].replace("9 small vehicles", "12 small vehicles", 1)
        item["messages"][1]["content"] = text
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("count_mismatch", changed, "12")
    ]


def test_a_subset_counted_outside_counting_answers_is_not_a_mismatch(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    items = _lines(clean_set["instructions"])
    item = _first(items, "detailed_description", "9 small vehicles")
    item["messages"][1]["content"] += " Three small vehicles are parked under a tree."
    path = _write(tmp_path / "instructions.jsonl", items)
    summary = validate_instructions(path, clean_set["records"], options=ValidationOptions())
    assert summary.rejected == 0


def test_unknown_ref_id_is_caught(clean_set: dict[str, Path], tmp_path: Path) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "grounding", "<ref:")
        item["messages"][1]["content"] += " Also <ref:99>."
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("unknown_ref", changed, "99")
    ]
    assert "<ref:99>" in rejects[0]["message"]


def test_box_outside_the_image_is_caught(clean_set: dict[str, Path], tmp_path: Path) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "region_identification")
        region = next(iter(item["regions"].values()))
        width = item["image_size"][0]
        region["bbox"] = [width - 5.0, 10.0, 20.0, 8.0]
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    codes = {r["reason"] for r in rejects}
    assert "box_outside_image" in codes and codes <= {"box_outside_image", "ref_box_mismatch"}
    assert all(r["entry"] == changed for r in rejects)


def test_invented_category_is_caught(clean_set: dict[str, Path], tmp_path: Path) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "region_caption")  # scene_00: a parking lot without ships
        item["messages"][1]["content"] += " A ship is moored beside it."
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("invented_category", changed, "ship")
    ]


def test_wrong_class_named_for_a_ref_is_caught(clean_set: dict[str, Path], tmp_path: Path) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "relations", "the small vehicle <ref:")
        item["messages"][1]["content"] = item["messages"][1]["content"].replace(
            "the small vehicle <ref:", "the storage tank <ref:", 1
        )
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("ref_category_mismatch", changed, "storage tank")
    ]
    assert "'small-vehicle'" in rejects[0]["message"]


def test_negated_and_quoted_category_words_are_not_inventions(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    items = _lines(clean_set["instructions"])
    item = _first(items, "region_caption")
    item["messages"][1]["content"] += " There is no ship, and no harbour without a quay."
    path = _write(tmp_path / "instructions.jsonl", items)
    summary = validate_instructions(path, clean_set["records"], options=ValidationOptions())
    assert summary.rejected == 0


def test_duplicate_conversation_is_caught(clean_set: dict[str, Path], tmp_path: Path) -> None:
    def change(items: list[dict]) -> str:
        copy = json.loads(json.dumps(_first(items, "counting")))
        first_id = copy["id"]
        copy["id"] += "-copy"
        copy["messages"][1]["content"] = "  " + copy["messages"][1]["content"].upper()
        items.append(copy)
        return first_id

    first_id, rejects = _plant(clean_set, tmp_path, change)
    assert [(r["reason"], r["entry"], r["value"]) for r in rejects] == [
        ("duplicate", first_id + "-copy", first_id)
    ]


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([("assistant", "Hi"), ("user", "<image>\nQ?")], "roles"),
        ([("user", "<image>\nQ? <image>"), ("assistant", "A.")], "image_token"),
        (
            [("user", "Q?"), ("assistant", "A."), ("user", "<image>\nQ?"), ("assistant", "A.")],
            "image_token",
        ),
        ([("user", "<image>\nQ?"), ("assistant", "  ")], "empty_answer"),
        ([("user", "<image>\nQ?"), ("assistant", "A."), ("user", "And?")], "empty_answer"),
    ],
)
def test_broken_structure_is_caught(
    clean_set: dict[str, Path], tmp_path: Path, messages: list, code: str
) -> None:
    def change(items: list[dict]) -> str:
        item = _first(items, "brief_caption")
        item["messages"] = [{"role": r, "content": c} for r, c in messages]
        return item["id"]

    changed, rejects = _plant(clean_set, tmp_path, change)
    assert code in {r["reason"] for r in rejects}
    assert {r["entry"] for r in rejects} == {changed}


def test_unreadable_line_is_a_rejection_not_a_crash(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    text = clean_set["instructions"].read_text(encoding="utf-8") + '{"id": 3}\n'
    path = tmp_path / "instructions.jsonl"
    path.write_text(text, encoding="utf-8")
    summary = validate_instructions(path, clean_set["records"], options=ValidationOptions())
    rejects = _rejects(summary)
    assert summary.rejected == 1 and rejects[0]["reason"] == "schema"
    assert rejects[0]["line"] == len(text.splitlines())
    assert summary.rejects_file == tmp_path / "instructions.jsonl.rejects.jsonl"


def test_every_reason_code_is_documented() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "validate.md").read_text(encoding="utf-8")
    assert all(f"`{code}`" in docs for code in REASONS)


def test_cli_validate_writes_clean_and_rejects(clean_set: dict[str, Path], tmp_path: Path) -> None:
    items = _lines(clean_set["instructions"])
    _first(items, "counting")["messages"][1]["content"] = "There are 40 planes in the image."
    path = _write(tmp_path / "instructions.jsonl", items)
    clean = tmp_path / "clean.jsonl"
    args = ["validate", str(path), "--records", str(clean_set["records"]), "-o", str(clean)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{len(items) - 1} kept, 1 rejected" in result.output
    assert "count_mismatch: 1" in result.output
    assert len(_lines(clean)) == len(items) - 1
    assert _lines(tmp_path / "clean.jsonl.rejects.jsonl")[0]["reason"] == "count_mismatch"
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1


def test_cli_validate_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    result = runner.invoke(app, ["validate", str(missing), "--records", str(missing)])
    assert result.exit_code == 2
    assert "missing.jsonl" in result.output and "file not found" in result.output
    bad_style = runner.invoke(
        app, ["validate", str(missing), "--records", str(missing), "--boxes", "nope"]
    )
    assert bad_style.exit_code == 2 and "unknown box style 'nope'" in bad_style.output


def test_image_leaked_into_another_split_is_caught(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    """A test-split copy of scene_00 (same bytes) and of scene_02 (re-encoded, brightened)."""
    from PIL import Image, ImageEnhance

    from rsgpt4v.raster import read_rgb8

    root = tmp_path / "root"
    shutil.copytree(clean_set["root"] / "images", root / "images")
    shutil.copy(root / "images/scene_00.tif", root / "images/test_copy.tif")
    brighter = ImageEnhance.Brightness(Image.fromarray(read_rgb8(root / "images/scene_02.tif")))
    brighter.enhance(1.05).save(root / "images/test_near.jpg", quality=90)
    records = _lines(clean_set["records"])
    for name, source in (("test_copy.tif", 0), ("test_near.jpg", 2)):
        copy = json.loads(json.dumps(records[source]))
        copy.update(id=f"dota/test/{name}", split="test")
        copy["image"]["path"] = f"images/{name}"
        records.append(copy)
    record_file = _write(tmp_path / "records.jsonl", records)
    summary = validate_instructions(
        clean_set["instructions"],
        record_file,
        tmp_path / "clean.jsonl",
        options=ValidationOptions(image_root=root),
    )
    assert summary.leaked_records == 2
    rejects = [r for r in _rejects(summary) if r["reason"] == "leaked_image"]
    leaked = {r["entry"].split("#")[0] for r in rejects}
    assert leaked == {"dota/train/scene_00", "dota/train/scene_02"}
    assert {r["value"] for r in rejects} == {"dota/test/test_copy.tif", "dota/test/test_near.jpg"}
    assert any("identical bytes" in r["message"] for r in rejects)
    assert any("phash distance" in r["message"] for r in rejects)
    assert {r["reason"] for r in _rejects(summary)} == {"leaked_image"}


def test_records_are_found_by_id_or_image_and_a_bad_record_line_is_named(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    from rsgpt4v.errors import InputError
    from rsgpt4v.validate.records import RecordTable

    with RecordTable(clean_set["records"]) as table:
        assert len(table) == 5
        by_id = table.find("dota/train/scene_03", None)
        by_image = table.find("no/such/id", "export/sample/images/scene_03.tif")
        assert by_id is not None and by_image == by_id and by_id.image.width == 256
        assert table.find("no/such/id", "images/none.tif") is None
    broken = tmp_path / "records.jsonl"
    lines = clean_set["records"].read_text(encoding="utf-8").splitlines()
    broken.write_text("\n".join([*lines[:2], "", '{"id": "x"}', *lines[2:]]) + "\n")
    with pytest.raises(InputError, match=r"records.jsonl:4: not a valid Record"):
        validate_instructions(clean_set["instructions"], broken)


def test_leak_pairs_keep_the_holdout_copy_and_ignore_one_split() -> None:
    from rsgpt4v.validate.leakage import ImageEntry, find_leaks

    entries = [
        ImageEntry("a/train/1", "train", "s1", 0b1111),
        ImageEntry("b/test/1", "test", "s2", 0b1110),  # 1 bit from a/train/1
        ImageEntry("a/train/2", "train", "s3", 0xFFFF_0000_0000_0000),
        ImageEntry("a/train/3", "train", "s3", 0xFFFF_0000_0000_0000),  # same split: no leak
        ImageEntry("c/trainval/9", "trainval", "s9", 0x00FF_00FF_00FF_00FF),
        ImageEntry("d/train/9", "train", "s9", 0x00FF_00FF_00FF_00FF),
    ]
    leaks = find_leaks(entries, max_distance=2)
    assert {k: (v.other_id, v.distance) for k, v in leaks.items()} == {
        "a/train/1": ("b/test/1", 1),
        "c/trainval/9": ("d/train/9", 0),  # neither is holdout: the later (split, id) goes
    }
    assert find_leaks(entries, max_distance=0).keys() == {"c/trainval/9"}


# Issue #20: before answer keys had variants, the demo gave 460 answer templates and 1,780
# distinct words per 1,000 instructions.
BASELINE_VARIETY = {"answer_templates_per_1000": 460, "vocabulary_per_1000": 1780}


def test_demo_phrasing_variety_is_at_least_twice_the_baseline(
    clean_set: dict[str, Path], tmp_path: Path
) -> None:
    summary = validate_instructions(
        clean_set["instructions"],
        clean_set["records"],
        tmp_path / "clean.jsonl",
        options=ValidationOptions(leakage=False),
    )
    for key, baseline in BASELINE_VARIETY.items():
        assert summary.variety[key] >= 2 * baseline, (key, summary.variety)


def test_validate_seed_picks_the_report_samples(clean_set: dict[str, Path], tmp_path: Path) -> None:
    """``validate --seed`` reaches the report's sample choice (ValidationOptions.seed)."""
    from typer.testing import CliRunner

    from rsgpt4v.cli import app

    shown = []
    for seed in (0, 0, 1):
        report = tmp_path / f"report{len(shown)}"
        args = ["validate", str(clean_set["instructions"]), "--records", str(clean_set["records"])]
        args += ["--report", str(report), "--samples", "5", "--seed", str(seed), "--no-leakage"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        shown.append((report / "data.js").read_text(encoding="utf-8"))
    assert shown[0] == shown[1] and shown[0] != shown[2]
