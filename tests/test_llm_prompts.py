"""What the LLM prompts show the model (issue #20): objects spread over the scene within a budget,
crops for objects too small in the scene image, context the labels do not cover, and a dry run
that previews every pass."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.instruct import dataset_vocabulary
from rsgpt4v.instruct.attributes import object_facts
from rsgpt4v.instruct.llm.generate import generate_llm_instructions
from rsgpt4v.instruct.llm.images import seen_scale
from rsgpt4v.instruct.llm.passes import (
    PASSES,
    Earlier,
    RecordContext,
    absent_classes,
    build_messages,
    system_text,
    user_text,
)
from rsgpt4v.instruct.llm.replies import GlobalReply
from rsgpt4v.instruct.llm.reply_checks import check
from rsgpt4v.instruct.llm.selection import (
    MAX_LISTED_OBJECTS,
    MIN_APPEARANCE_PX,
    SELECTION_GRID,
    TABLE_BYTES,
    ObjectBudget,
    View,
)
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.schema import write_jsonl
from tests.fake_openai_server import FakeOpenAIServer
from tests.llm_fixtures import (
    CLUSTER_SCENE,
    clustered_scene_record,
    make_clustered_scene,
    make_llm_records,
)

KEY = "sk-rsgpt4v-PROMPTS-1a2b3c4d5e6f7a8b9c0d"


def _context(record, **budget) -> RecordContext:
    view = View.of(record.image, "low")
    return RecordContext.of(record, object_facts(record), view, ObjectBudget(**budget))


def _cell(box) -> tuple[int, int]:
    width, height = CLUSTER_SCENE
    x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
    return int(y / height * SELECTION_GRID), int(x / width * SELECTION_GRID)


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"id"')]


# --- which objects are listed ---------------------------------------------------------------


def test_the_table_spreads_over_every_cell_with_objects_within_the_budget() -> None:
    record = clustered_scene_record(200)  # 200 boats in the top-left cell, 1 object elsewhere
    context = _context(record)
    listed = context.listed
    assert len(listed) == MAX_LISTED_OBJECTS < len(record.objects)
    boxes = {o.id: o.bbox for o in record.objects}
    assert {_cell(boxes[f.id]) for f in listed} == {_cell(b) for b in boxes.values()}
    quadrants = {(r * 2 // SELECTION_GRID, c * 2 // SELECTION_GRID) for r, c in map(_cell, [
        boxes[f.id] for f in listed])}  # fmt: skip
    assert quadrants == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # "the first 60 in label order" would have listed boats of one corner only
    boats = [f for f in listed if f.category == "ship"]
    assert len(boats) == MAX_LISTED_OBJECTS - 16  # what the other 15 cells and the plane leave
    text = user_text(PASSES["local"], context, Earlier())
    rows = _rows(text)
    assert [r["id"] for r in rows] == [f.id for f in listed]
    assert sum(len(line.encode()) + 1 for line in context.rows) <= TABLE_BYTES
    assert "; 176 further objects not listed: ship 176):" in text


def test_larger_and_distinct_objects_come_first() -> None:
    record = clustered_scene_record(200)
    listed = _context(record).listed
    area = {o.id: o.bbox[2] * o.bbox[3] for o in record.objects}
    assert area[listed[0].id] == max(area.values())  # the table opens with the largest object
    boats = [o.id for o in record.objects if o.category == "ship"]
    chosen = [f.id for f in listed if f.category == "ship"]
    smallest_chosen = min(area[i] for i in chosen)
    assert all(area[i] <= smallest_chosen for i in boats if i not in chosen)  # the largest boats
    order = [f.id for f in listed]
    plane = 200  # smaller than every boat of its cell, but the only one of its class there
    assert order.index(plane) < order.index(chosen[1])
    assert [area[i] for i in chosen] == sorted((area[i] for i in chosen), reverse=True)


@pytest.mark.parametrize(("max_objects", "max_bytes"), [(10, TABLE_BYTES), (40, 1500)])
def test_the_budget_of_rows_and_bytes_holds(max_objects: int, max_bytes: int) -> None:
    context = _context(
        clustered_scene_record(200), max_objects=max_objects, max_table_bytes=max_bytes
    )
    assert len(context.listed) <= max_objects
    assert sum(len(line.encode()) + 1 for line in context.rows) <= max_bytes
    cells = {_cell(f.bbox) for f in context.listed}
    assert len(cells) == min(len(context.listed), 16)  # one row per cell before any second
    assert PASSES["local"].max_tokens(len(context.listed)) == 400 + 90 * len(context.listed)


def test_a_budget_that_lists_nothing_is_refused() -> None:
    from rsgpt4v.errors import InputError

    with pytest.raises(InputError, match="--max-objects must be at least 1"):
        ObjectBudget(max_objects=0)
    with pytest.raises(InputError, match="--max-crops must not be negative"):
        LlmSettings(model="gpt-4o", max_crops=-1)


# --- small objects: crops, or no appearance question -----------------------------------------


def test_the_seen_scale_follows_what_the_api_does_to_the_image() -> None:
    # DOTA P0706 (1111 x 1182): a 25-px boat is 11 px at detail low and 17 px at detail high
    # (high fits the short side to 768): under MIN_APPEARANCE_PX either way
    assert 25 * seen_scale(1111, 1182, "low") == pytest.approx(25 * 512 / 1182)
    assert 25 * seen_scale(1111, 1182, "high") == pytest.approx(25 * 768 / 1111)
    assert 25 * seen_scale(1111, 1182, "high") < MIN_APPEARANCE_PX
    assert seen_scale(256, 256, "low") == 1.0
    assert seen_scale(4000, 1000, "high") == pytest.approx(2048 / 4000)  # short side under 768


def test_objects_too_small_in_the_scene_are_shown_in_crops_or_marked_too_small() -> None:
    record = clustered_scene_record(200)
    context = _context(record)
    crops = context.selection.crops
    assert 1 <= len(crops) <= 4
    rows = {r["id"]: r for r in _rows(user_text(PASSES["local"], context, Earlier()))}
    scale = View.of(record.image, "low").scale
    for f in context.listed:
        small = f.size_px * scale < MIN_APPEARANCE_PX
        tiny = f.size_px < MIN_APPEARANCE_PX  # the 12-px plane: no crop shows it larger
        assert ("crop" in rows[f.id]) == (small and not tiny), rows[f.id]
        assert bool(rows[f.id].get("too_small")) == tiny, rows[f.id]
        if "crop" in rows[f.id]:
            x, y, w, h = crops[rows[f.id]["crop"] - 1].window
            bx, by, bw, bh = f.bbox
            assert x <= bx and y <= by and bx + bw <= x + w and by + bh <= y + h
    without = _context(record, max_crops=0)
    assert not without.selection.crops
    text = user_text(PASSES["local"], without, Earlier())
    flagged = [r for r in _rows(text) if r.get("too_small")]
    assert len(flagged) == sum(1 for r in rows.values() if "crop" in r or "too_small" in r)
    assert "give no colour,\nmaterial or condition" in text and "crop" not in text.lower()


def test_crops_go_where_they_cover_most_and_the_rest_is_marked_too_small() -> None:
    record = clustered_scene_record(200, spread_side=30)  # spread objects of 30-58 px
    context = _context(record, max_crops=2)  # 30 px: 13 px in the scene image, 30 in a crop
    crops, selection = context.selection.crops, context.selection
    assert len(crops) == 2  # every one used
    boats = {f.id for f in context.listed if f.category == "ship"}
    assert boats <= set(crops[0].ids)  # the first crop goes to the cluster
    assert [len(c.ids) for c in crops] == sorted((len(c.ids) for c in crops), reverse=True)
    scale = View.of(record.image, "low").scale
    small = {f.id for f in context.listed if f.size_px * scale < MIN_APPEARANCE_PX}
    cropped = set(selection.crop_of)
    assert cropped | selection.too_small == small and not cropped & selection.too_small
    assert selection.too_small  # more small spots than crops


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSGPT4V_PROMPTS_KEY", KEY)


def _settings(server: FakeOpenAIServer, root: Path, cache: Path, **changes) -> LlmSettings:
    values = dict(
        model="gpt-4o",
        base_url=server.base_url,
        api_key_env="RSGPT4V_PROMPTS_KEY",
        image_root=root,
        cache_dir=cache,
        concurrency=2,
        timeout_s=5.0,
    )
    return LlmSettings(**(values | changes))


def _images(body: dict) -> list[dict]:
    return [p["image_url"] for p in body["messages"][1]["content"] if p["type"] == "image_url"]


def _pass_of(body: dict) -> str:
    return body["response_format"]["json_schema"]["name"].removesuffix("_reply")


def test_the_local_request_carries_full_resolution_crops_of_the_small_objects(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    records = make_clustered_scene(tmp_path / "data")
    config = _settings(server, records.parent, tmp_path / "cache")
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert summary.statuses == {"ok": 3}
    bodies = {_pass_of(b): b for b in server.bodies}
    local = _images(bodies["local"])
    record = clustered_scene_record(200)
    crops = _context(record).selection.crops
    assert len(local) == 1 + len(crops) and len(crops) >= 1
    assert [i["detail"] for i in local] == ["low"] * len(local)
    assert len(_images(bodies["global"])) == len(_images(bodies["multi_turn"])) == 1
    text = bodies["local"]["messages"][1]["content"][0]["text"]
    assert "image 2 is crop 1" in text and '"crop":1' in text
    width, height = CLUSTER_SCENE
    for crop, part in zip(crops, local[1:], strict=True):
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(part["url"].split(",")[1]))))
        x, y, w, h = crop.window
        assert pixels.shape[:2] == (h, w)  # full resolution: one source pixel per pixel sent
        # the gradient says where it was cut: red grows with x, green with y
        assert pixels[..., 0].mean() == pytest.approx((x + w / 2) / width * 255, abs=3)
        assert pixels[..., 1].mean() == pytest.approx((y + h / 2) / height * 255, abs=3)
    calls = server.calls["chat"]
    again = generate_llm_instructions(records, tmp_path / "again.jsonl", config)
    assert server.calls["chat"] == calls and again.cached == 3  # crops enter the key stably


def test_without_crops_the_small_objects_get_no_appearance_question(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    records = make_clustered_scene(tmp_path / "data")
    config = _settings(server, records.parent, tmp_path / "cache", max_crops=0)
    generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    local = next(b for b in server.bodies if _pass_of(b) == "local")
    assert len(_images(local)) == 1
    text = local["messages"][1]["content"][0]["text"]
    small = [r for r in _rows(text) if r.get("too_small")]
    assert small and all(r["category"] in ("ship", "plane") for r in small)
    assert f"under {MIN_APPEARANCE_PX} px in every image you are sent" in text
    assert "give no colour" in text and "crop" not in text.lower()


def test_objects_small_in_the_source_itself_get_no_crop(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    records = make_llm_records(tmp_path / "data", 2)  # 96-px scenes sent whole; objects 15 px
    config = _settings(server, records.parent, tmp_path / "cache")
    generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    assert server.bodies and all(len(_images(b)) == 1 for b in server.bodies)  # no crop helps
    local = [
        b["messages"][1]["content"][0]["text"] for b in server.bodies if _pass_of(b) == "local"
    ]
    rows = [r for text in local for r in _rows(text)]
    assert rows and all(r["too_small"] and "crop" not in r for r in rows)


# --- context the labels do not cover ---------------------------------------------------------


@pytest.fixture
def marina(tmp_path: Path) -> tuple[RecordContext, tuple[str, ...]]:
    record = clustered_scene_record(30)
    path = tmp_path / "records.jsonl"
    write_jsonl(path, [record])
    return _context(record), dataset_vocabulary(path)["dota"]


def test_the_prompts_allow_unlabelled_context_and_name_the_classes_that_may_not_be_named(
    marina,
) -> None:
    context, vocabulary = marina
    system = system_text()
    assert "roads, car parks" in system and "water, vegetation" in system
    assert "never name a class that the task lists as absent" in system.lower()
    absent = absent_classes(context, vocabulary)
    assert "harbor" in absent and "roundabout" in absent and "swimming pool" in absent
    assert not {"ship", "plane", "storage tank"} & set(absent)
    for name in PASSES:
        messages = build_messages(PASSES[name], context, Earlier(), None, vocabulary=vocabulary)
        text = messages[1]["content"][0]["text"]
        assert f"absent (never name them): {', '.join(absent)}." in text


def test_the_check_rejects_each_absent_class_the_prompt_lists_and_accepts_context(
    marina,
) -> None:
    context, vocabulary = marina
    for name in absent_classes(context, vocabulary):  # what the prompt forbids is rejected
        found = check(GlobalReply(description=f"Beyond the boats lies a {name}."), context,
                      vocabulary)  # fmt: skip
        assert found is not None and "a class the record does not have" in found, name
    scenery = GlobalReply(
        description="Boats such as <ref:0> line the pontoons of a marina on open water; a road "
        "runs past a car park, parking lots and rows of trees, with vegetation, buildings and "
        "bare land behind them."
    )
    assert check(scenery, context, vocabulary) is None


def test_incomplete_labels_list_no_absent_class() -> None:
    record = clustered_scene_record(30)
    record.meta["objects_exhaustive"] = False
    context = _context(record)
    assert absent_classes(context, ("ship", "harbor")) == []
    text = user_text(PASSES["local"], context, Earlier(), ("ship", "harbor"))
    assert "absent" not in text and "may not list every object" in text


def test_a_run_keeps_context_replies_and_rejects_an_unlabelled_class(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    records = make_clustered_scene(tmp_path / "data", cluster=30)

    def hook(pass_name: str, reply: dict, body: dict) -> str | None:
        if pass_name == "global":
            return json.dumps({"description": "Boats moor beside a road and a car park."})
        if pass_name == "multi_turn":
            reply["turns"][0]["answer"] = "A marina with a harbor."  # harbor: unlabelled
            return json.dumps(reply)
        return None

    server.reply_hook = hook
    config = _settings(server, records.parent, tmp_path / "cache")
    summary = generate_llm_instructions(records, tmp_path / "out.jsonl", config)
    rows = {r["pass"]: r for r in map(json.loads, summary.log.read_text().splitlines())}
    assert rows["global"]["status"] == "ok"
    assert rows["multi_turn"]["status"] == "rejected"
    assert "'harbor', a class the record does not have" in rows["multi_turn"]["reason"]
    local_text = next(b for b in server.bodies if _pass_of(b) == "local")["messages"][1]
    assert "harbor" in local_text["content"][0]["text"]  # the prompt had said so


# --- the dry run -----------------------------------------------------------------------------


def _dry_run(records: Path, tmp_path: Path, *extra: str) -> str:
    args = [
        "instruct", str(records), "-o", str(tmp_path / "out.jsonl"), "--generator", "llm",
        "--model", "gpt-4o", "--image-root", str(records.parent), "--dry-run", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_dry_run_previews_every_pass_with_placeholder_earlier_replies(
    tmp_path: Path,
) -> None:
    records = make_clustered_scene(tmp_path / "data")
    output = _dry_run(records, tmp_path)
    sections = output.split("\n--- ")
    headings = [s.splitlines()[0] for s in sections[1:]]
    assert output.startswith("--- local pass of marina (rendered) ---")
    assert headings[0].startswith("global pass of marina (rendered); fed a PLACEHOLDER local")
    assert headings[1].startswith(
        "multi_turn pass of marina (rendered); fed a PLACEHOLDER local reply and a PLACEHOLDER "
        "global reply"
    )
    assert headings[2] == "estimate ---"
    local, global_, dialogue = output.split("\n--- ")[0], sections[1], sections[2]
    assert "Task: local pass" in local and "[image 2: crop 1 of images/marina.png" in local
    assert "Task: global pass" in global_ and '"description":"[placeholder] A ship' in global_
    assert "[image 2" not in global_  # crops go with the local pass only
    assert "Task: multi-turn pass" in dialogue and "Scene description:\n[placeholder]" in dialogue
    assert "1 records, 3 requests to gpt-4o" in output and "no request was sent" in output
    assert not (tmp_path / "out.jsonl").exists()


def test_the_dry_run_estimate_counts_the_crops(tmp_path: Path) -> None:
    records = make_clustered_scene(tmp_path / "data")

    def input_tokens(output: str) -> int:
        line = next(x for x in output.splitlines() if x.startswith("input tokens"))
        return int(line.rsplit(" ", 1)[1])

    with_crops = _dry_run(records, tmp_path)
    without = _dry_run(records, tmp_path, "--max-crops", "0")
    assert "[image 2" not in without and '"too_small":true' in without
    record = clustered_scene_record(200)
    texts = [
        user_text(
            PASSES["local"],
            _context(record, max_crops=n),
            Earlier(),
            dataset_vocabulary(records)["dota"],
        )
        for n in (4, 0)
    ]
    crops = len(_context(record).selection.crops)
    text_bytes = len(texts[0].encode()) - len(texts[1].encode())
    # the bound: text at one token per byte, each crop at gpt-4o's low-detail 85 tokens
    assert input_tokens(with_crops) - input_tokens(without) == 85 * crops + text_bytes
