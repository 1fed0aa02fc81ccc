"""Each export format, read the way its consumer reads it, on the generated sample.

sample → convert → instruct (counting, grounding) → export; every test then opens the file with
the consumer's conventions and checks that every rendered box parses back to the record's box.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.boxfmt import STYLES
from rsgpt4v.cli import app
from rsgpt4v.convert import convert_dataset
from rsgpt4v.errors import InputError
from rsgpt4v.export import export_instructions
from rsgpt4v.families import BoxConvention
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.schema import REF, Instruction, Record, read_jsonl

DATA_URL = "data:image/jpeg;base64,"


@pytest.fixture(scope="module")
def pipeline(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("pipeline")
    records = convert_dataset("dota", sample_root, out / "records.jsonl", split="train").output
    instructions = generate_instructions(
        records, out / "instructions.jsonl", tasks="counting,grounding"
    ).output
    return {
        "instructions": instructions,
        "items": list(read_jsonl(instructions, Instruction)),
        "records": {r.id: r for r in read_jsonl(records, Record)},
        "root": sample_root,
    }


def assistant_texts(fmt: str, output: Path) -> list[str]:
    """The assistant turns of every item, in order, read with the format's own structure."""
    if fmt == "llava":
        return [
            t["value"]
            for item in json.loads(output.read_text())
            for t in item["conversations"]
            if t["from"] == "gpt"
        ]
    if fmt == "sharegpt":
        items = json.loads(output.read_text())
    elif fmt == "openai":
        items = [json.loads(line) for line in output.read_text().splitlines()]
    else:
        import datasets

        items = datasets.load_dataset(
            "parquet", data_files=str(output), cache_dir=str(output.parent / "hf-cache")
        )["train"]
    return [m["content"] for item in items for m in item["messages"] if m["role"] == "assistant"]


def check_boxes(
    texts: list[str],
    pipeline: dict[str, object],
    style: str,
    shown: dict[str, tuple[int, int]] | None = None,
    square_pad: bool | None = None,
) -> int:
    """Every box in ``texts`` equals, within the style's grid, the box of the record's object.

    ``shown`` maps an image to the size the model was shown (OpenAI data URLs): boxes parsed in
    that picture are scaled back to the record's pixels.
    """
    checked = 0
    for text, instruction in zip(texts, pipeline["items"], strict=True):
        raw = instruction.messages[-1].content
        record = pipeline["records"][instruction.record_id]
        width, height = record.image.width, record.image.height
        w, h = (shown or {}).get(instruction.image, (width, height))
        view = BoxConvention(style, square_pad=square_pad).view(w, h)
        boxes = view.parse(text)
        ids = [int(n) for n in REF.findall(raw)]
        assert len(boxes) == len(ids)
        qx, qy = view.quantisation()
        sx, sy = width / w, height / h
        for box, object_id in zip(boxes, ids, strict=True):
            x, y, bw, bh = record.objects[object_id].bbox
            assert abs(box.x1 * sx - x) <= (qx + 1e-6) * sx + 1e-6
            assert abs(box.y1 * sy - y) <= (qy + 1e-6) * sy + 1e-6
            assert abs(box.x2 * sx - (x + bw)) <= (qx + 1e-6) * sx + 1e-6
            assert abs(box.y2 * sy - (y + bh)) <= (qy + 1e-6) * sy + 1e-6
            checked += 1
    return checked


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(
    ("fmt", "name"),
    [("llava", "l.json"), ("sharegpt", "s.json"), ("openai", "o.jsonl"), ("parquet", "p.parquet")],
)
def test_boxes_parse_back_to_the_records_boxes_in_every_format(
    fmt: str, name: str, style: str, pipeline: dict[str, object], tmp_path: Path
) -> None:
    output = tmp_path / name
    summary = export_instructions(
        pipeline["instructions"],
        output,
        fmt=fmt,
        boxes=style,
        image_root=pipeline["root"],
        max_side=None,
    )
    assert summary.written == len(pipeline["items"])
    # boxes in answers: grounding lists only DOTA classes labelled exhaustively (12 on the sample)
    assert check_boxes(assistant_texts(fmt, output), pipeline, style) >= 10


def test_llava_has_one_image_token_at_the_start(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    output = tmp_path / "llava.json"
    export_instructions(pipeline["instructions"], output, image_root=pipeline["root"])
    for item in json.loads(output.read_text()):
        turns = item["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert sum(t["value"].count("<image>") for t in turns) == 1
        assert turns[0]["value"].startswith("<image>\n")
        assert (output.parent / item["image"]).is_file()


def test_sharegpt_image_tags_match_images_and_dataset_info_is_merged(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    for name in ("rs_train.json", "rs_val.jsonl"):
        export_instructions(
            pipeline["instructions"], tmp_path / name, fmt="sharegpt", image_root=pipeline["root"]
        )
    items = json.loads((tmp_path / "rs_train.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "rs_val.jsonl").read_text().splitlines()]
    assert items == lines and len(items) == len(pipeline["items"])
    for item in items:
        tags = sum(m["content"].count("<image>") for m in item["messages"])
        assert tags == len(item["images"]) == 1
        assert [m["role"] for m in item["messages"]] == ["user", "assistant"]
        assert (tmp_path / item["images"][0]).is_file()  # LLaMA-Factory's media_dir: this folder
    entries = json.loads(info.read_text())
    assert entries["mine"] == {"file_name": "mine.json"}
    assert entries["rs_val"]["file_name"] == "rs_val.jsonl"
    assert entries["rs_train"] == {
        "file_name": "rs_train.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    }


def test_sharegpt_refuses_a_broken_dataset_info_before_writing(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    (tmp_path / "dataset_info.json").write_text("{not json")
    with pytest.raises(InputError, match=r"dataset_info\.json: not valid JSON"):
        export_instructions(pipeline["instructions"], tmp_path / "rs.json", fmt="sharegpt")
    assert not (tmp_path / "rs.json").exists()


@pytest.mark.parametrize("style", ["pixel", "qwen2vl"])
def test_openai_lines_carry_a_jpeg_data_url_of_the_scaled_image(
    style: str, pipeline: dict[str, object], tmp_path: Path
) -> None:
    output = tmp_path / "openai.jsonl"
    export_instructions(
        pipeline["instructions"],
        output,
        fmt="openai",
        boxes=style,
        image_root=pipeline["root"],
        max_side=100,
    )
    shown = {}
    for line, instruction in zip(output.read_text().splitlines(), pipeline["items"], strict=True):
        user, assistant = json.loads(line)["messages"]
        image_part, text_part = user["content"]
        assert image_part["type"] == "image_url" and text_part["type"] == "text"
        assert "<image>" not in text_part["text"] and "<image>" not in assistant["content"]
        url = image_part["image_url"]["url"]
        assert url.startswith(DATA_URL)
        picture = Image.open(io.BytesIO(base64.b64decode(url[len(DATA_URL) :])))
        width, height = instruction.image_size
        scale = 100 / max(width, height)
        assert picture.format == "JPEG" and picture.mode == "RGB"
        assert picture.size == (round(width * scale), round(height * scale))
        shown[instruction.image] = picture.size
    texts = [
        json.loads(line)["messages"][1]["content"] for line in output.read_text().split("\n")[:-1]
    ]
    assert check_boxes(texts, pipeline, style, shown) >= 10


def test_openai_with_hosted_images_uses_the_url_prefix(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    output = tmp_path / "openai.jsonl"
    export_instructions(
        pipeline["instructions"],
        output,
        fmt="openai",
        boxes="pixel",
        image_url_prefix="https://data.example.org/sample/",
    )
    first = json.loads(output.read_text().splitlines()[0])
    url = first["messages"][0]["content"][0]["image_url"]["url"]
    assert url == "https://data.example.org/sample/" + pipeline["items"][0].image


def test_openai_rejects_an_image_of_another_size(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    wrong = pipeline["items"][0].model_copy(update={"image_size": [10, 10]})
    source = tmp_path / "i.jsonl"
    source.write_text(wrong.model_dump_json() + "\n")
    summary = export_instructions(
        source, tmp_path / "o.jsonl", fmt="openai", image_root=pipeline["root"], skip_bad=True
    )
    assert summary.written == 0 and "the instruction says 10x10" in summary.rejects[0].reason


def test_parquet_reads_back_the_same_rows_with_a_dataset_card(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    import datasets

    output = tmp_path / "train.parquet"
    sharegpt = tmp_path / "rs.json"
    options = {"boxes": "qwen25vl", "image_root": pipeline["root"]}
    export_instructions(pipeline["instructions"], output, fmt="parquet", **options)
    export_instructions(pipeline["instructions"], sharegpt, fmt="sharegpt", **options)
    rows = datasets.load_dataset(
        "parquet", data_files=str(output), cache_dir=str(tmp_path / "cache")
    )["train"]
    items = pipeline["items"]
    assert rows["id"] == [i.id for i in items]
    assert rows["record_id"] == [i.record_id for i in items]
    assert rows["task"] == [i.task for i in items]
    assert rows["source_template"] == [i.source.template for i in items]
    assert set(rows["source_generator"]) == {"rules"}
    expected = json.loads(sharegpt.read_text())
    assert rows["messages"] == [e["messages"] for e in expected]
    assert rows["image"] == [e["images"][0] for e in expected]
    card = (tmp_path / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: other" in header and "image-text-to-text" in header
    assert "data_files: train.parquet" in header
    counts = {t: sum(i.task == t for i in items) for t in ("counting", "grounding")}
    assert f"| counting | {counts['counting']} |" in card
    assert f"| grounding | {counts['grounding']} |" in card
    grounding = load_pool("grounding").template
    assert f"| rules | {grounding} | {counts['grounding']} |" in card
    assert f"| dota | {len(items)} | academic use only" in card


def test_parquet_embeds_images_at_the_instructions_size(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    import datasets

    output = tmp_path / "train.parquet"
    export_instructions(
        pipeline["instructions"],
        output,
        fmt="parquet",
        image_root=pipeline["root"],
        embed_images=True,
    )
    rows = datasets.load_dataset(
        "parquet", data_files=str(output), cache_dir=str(tmp_path / "cache")
    )["train"]
    assert isinstance(rows.features["image"], datasets.Image)
    for row, instruction in zip(rows, pipeline["items"], strict=True):
        assert row["image"].size == tuple(instruction.image_size)
        assert row["image"].mode == "RGB"


def test_parquet_keeps_a_readme_it_did_not_write(
    pipeline: dict[str, object], tmp_path: Path
) -> None:
    (tmp_path / "README.md").write_text("# my notes\n")
    with pytest.raises(InputError, match=r"README\.md that rsgpt4v did not write"):
        export_instructions(pipeline["instructions"], tmp_path / "t.parquet", fmt="parquet")
    assert (tmp_path / "README.md").read_text() == "# my notes\n"
    assert not (tmp_path / "t.parquet").exists()


def test_cli_export_names_the_side_files(pipeline: dict[str, object], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(pipeline["instructions"]),
            "--format",
            "sharegpt",
            "--boxes",
            "qwen2vl",
            "-o",
            str(tmp_path / "rs.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"also written: {tmp_path / 'dataset_info.json'}" in result.output


@pytest.mark.parametrize("fmt", ["sharegpt", "parquet"])
def test_square_padded_boxes_parse_back(
    fmt: str, pipeline: dict[str, object], tmp_path: Path
) -> None:
    output = tmp_path / ("o.json" if fmt == "sharegpt" else "o.parquet")
    export_instructions(pipeline["instructions"], output, fmt=fmt, square_pad=True)
    texts = assistant_texts(fmt, output)
    assert check_boxes(texts, pipeline, "llava", square_pad=True) >= 10
