from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.errors import InputError
from rsgpt4v.export import export_instructions, render_refs, to_llava
from rsgpt4v.families import BoxConvention
from rsgpt4v.raster import read_rgb8
from rsgpt4v.schema import Instruction, Message, Region, Source, write_jsonl


def _instruction(answer: str = "There are 2 ships: <ref:0> and <ref:3>.", **extra) -> Instruction:
    fields = {
        "id": "r#grounding-0",
        "record_id": "r",
        "image": "images/a.png",
        "image_size": [200, 100],
        "task": "grounding",
        "source": Source(generator="rules", template="grounding/v1"),
        "messages": [
            Message(role="user", content="<image>\nWhere are the ships?"),
            Message(role="assistant", content=answer),
        ],
        "regions": {
            "0": Region(bbox=[20, 10, 40, 30]),
            "3": Region(
                bbox=[100, 50, 50, 25], polygon=[[100, 50], [150, 50], [150, 75], [100, 75]]
            ),
        },
    }
    fields.update(extra)
    return Instruction(**fields)


def test_refs_render_in_each_style_and_parse_back_to_the_region() -> None:
    for style in ("llava", "qwen2vl", "qwen25vl", "geochat", "minigptv2", "internvl", "pixel"):
        text = render_refs(_instruction().messages[1].content, _instruction(), style)
        assert "<ref:" not in text
        view = BoxConvention(style).view(200, 100)
        boxes, (qx, qy) = view.parse(text), view.quantisation()
        expected = [(20, 10, 60, 40), (100, 50, 150, 75)]
        assert len(boxes) == len(expected), style
        for box, (x1, y1, x2, y2) in zip(boxes, expected, strict=True):
            assert abs(box.x1 - x1) <= qx and abs(box.x2 - x2) <= qx, style
            assert abs(box.y1 - y1) <= qy and abs(box.y2 - y2) <= qy, style


def test_llava_conversation_shape() -> None:
    item = to_llava(_instruction(), "llava", "images/a.png")
    assert item["conversations"][0] == {"from": "human", "value": "<image>\nWhere are the ships?"}
    # LLaVA-1.5's own convention: 0-1 of the image padded to a centred square, 2 decimals.
    assert item["conversations"][1]["value"] == (
        "There are 2 ships: [0.10, 0.30, 0.30, 0.45] and [0.50, 0.50, 0.75, 0.62]."
    )


def test_unknown_ref_is_rejected_with_skip_bad(tmp_path: Path) -> None:
    source = tmp_path / "instructions.jsonl"
    write_jsonl(source, [_instruction(), _instruction("Look at <ref:7>.", id="bad")])
    summary = export_instructions(source, tmp_path / "out.json", skip_bad=True)
    assert summary.written == 1
    rejects = [json.loads(line) for line in summary.rejects_file.open()]
    assert "instruction bad: refers to region 7" in rejects[0]["reason"]
    with pytest.raises(InputError, match="refers to region 7"):
        export_instructions(source, tmp_path / "out2.json")


def test_image_root_checks_images_and_writes_paths_relative_to_output(tmp_path: Path) -> None:
    (tmp_path / "data/images").mkdir(parents=True)
    (tmp_path / "data/images/a.png").write_bytes(b"png")
    source = tmp_path / "instructions.jsonl"
    write_jsonl(source, [_instruction(), _instruction(image="images/missing.png", id="gone")])
    out = tmp_path / "export/llava.json"
    summary = export_instructions(source, out, image_root=tmp_path / "data", skip_bad=True)
    items = json.loads(out.read_text())
    assert [i["id"] for i in items] == ["r#grounding-0"] and summary.written == 1
    assert (out.parent / items[0]["image"]).resolve() == (tmp_path / "data/images/a.png")
    assert "image not found" in summary.rejects[0].reason


def test_empty_export_is_valid_json(tmp_path: Path) -> None:
    source = tmp_path / "none.jsonl"
    source.write_text("")
    export_instructions(source, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == []


def test_bad_style_or_format_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction()])
    with pytest.raises(InputError, match="unknown model family / box style 'yolo'"):
        export_instructions(source, tmp_path / "o.json", boxes="yolo")
    with pytest.raises(InputError, match="unknown export format 'csv'"):
        export_instructions(source, tmp_path / "o.json", fmt="csv")


def test_second_image_token_is_rejected() -> None:
    bad = _instruction(
        messages=[
            Message(role="user", content="<image>\n<image> Where?"),
            Message(role="assistant", content="Here."),
        ]
    )
    with pytest.raises(ValueError, match="more than one <image>"):
        to_llava(bad, "llava", "a.png")


def test_llava_unpadded_and_three_decimals_on_request(tmp_path: Path) -> None:
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction()])
    export_instructions(source, tmp_path / "o.json", square_pad=False, box_decimals=3)
    answer = json.loads((tmp_path / "o.json").read_text())[0]["conversations"][1]["value"]
    assert answer == (
        "There are 2 ships: [0.100, 0.100, 0.300, 0.400] and [0.500, 0.500, 0.750, 0.750]."
    )
    export_instructions(source, tmp_path / "o.json", box_decimals=3)
    answer = json.loads((tmp_path / "o.json").read_text())[0]["conversations"][1]["value"]
    # 200x100 image centred in a 200x200 square: y moves down by 50 px before normalising.
    assert answer == (
        "There are 2 ships: [0.100, 0.300, 0.300, 0.450] and [0.500, 0.500, 0.750, 0.625]."
    )
    with pytest.raises(InputError, match="normalised box styles"):
        export_instructions(source, tmp_path / "o.json", boxes="pixel", square_pad=True)


def test_options_of_another_format_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction()])
    with pytest.raises(InputError, match="--embed-images applies to --format parquet"):
        export_instructions(source, tmp_path / "o.json", embed_images=True)
    with pytest.raises(InputError, match="--image-url-prefix applies to --format openai"):
        export_instructions(source, tmp_path / "o.json", fmt="sharegpt", image_url_prefix="x")
    with pytest.raises(InputError, match="give --image-root"):
        export_instructions(source, tmp_path / "o.jsonl", fmt="openai")
    with pytest.raises(InputError, match="give --image-root"):
        export_instructions(source, tmp_path / "o.parquet", fmt="parquet", embed_images=True)
    with pytest.raises(InputError, match="--render-images applies to --format llava and sharegpt"):
        export_instructions(source, tmp_path / "o.jsonl", fmt="openai", render_images="r")
    with pytest.raises(InputError, match="--render-images reads the images: give --image-root"):
        export_instructions(source, tmp_path / "o.json", render_images=tmp_path / "r")
    assert not list(tmp_path.glob("o.*")) and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("llava", "o.json"), ("sharegpt", "o.json"), ("openai", "o.jsonl"), ("parquet", "o.parquet")],
)
def test_every_format_rejects_the_same_bad_instructions(
    fmt: str, name: str, tmp_path: Path
) -> None:
    source = tmp_path / "i.jsonl"
    unanswered = [Message(role="user", content="<image>\nWhere?")] * 2
    write_jsonl(
        source,
        [
            _instruction(),
            _instruction("Look at <ref:7>.", id="unknown-ref"),
            _instruction(id="no-answer", messages=unanswered),
        ],
    )
    prefix = "https://example.org/rs" if fmt == "openai" else None
    summary = export_instructions(
        source, tmp_path / name, fmt=fmt, skip_bad=True, image_url_prefix=prefix
    )
    assert summary.written == 1 and summary.per_task == {"grounding": 1}
    reasons = [json.loads(line)["reason"] for line in summary.rejects_file.open()]
    assert reasons == [
        "instruction unknown-ref: refers to region 7, which is not in its regions",
        "instruction no-answer: the conversation must end with an assistant turn",
    ]


def test_a_system_turn_is_kept_where_the_format_has_one(tmp_path: Path) -> None:
    system = Message(role="system", content="You are a remote-sensing analyst.")
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction(messages=[system, *_instruction().messages])])
    export_instructions(source, tmp_path / "s.json", fmt="sharegpt")
    messages = json.loads((tmp_path / "s.json").read_text())[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[1]["content"] == "<image>\nWhere are the ships?"
    summary = export_instructions(source, tmp_path / "l.json", skip_bad=True)
    assert summary.written == 0 and "has no system turns" in summary.rejects[0].reason


def test_image_path_outside_the_root_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.png").write_bytes(b"png")
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction(image="../secret.png")])
    summary = export_instructions(
        source, tmp_path / "o.json", image_root=tmp_path / "root", skip_bad=True
    )
    assert summary.written == 0 and "leaves the image root" in summary.rejects[0].reason


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("llava", "o.json"), ("sharegpt", "o.json"), ("openai", "o.jsonl"), ("parquet", "o.parquet")],
)
def test_a_bad_instruction_stops_every_format_leaving_no_file(
    fmt: str, name: str, tmp_path: Path
) -> None:
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction(), _instruction("Look at <ref:7>.", id="bad")])
    prefix = "https://example.org/rs" if fmt == "openai" else None
    with pytest.raises(InputError, match="instruction bad: refers to region 7"):
        export_instructions(source, tmp_path / name, fmt=fmt, image_url_prefix=prefix)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.jsonl"]


def _bgrn_geotiff(path: Path, width: int = 200, height: int = 100) -> np.ndarray:
    """A 16-bit blue, green, red, near-infrared GeoTIFF, tagged so; returns read_rgb8 of it."""
    data = np.random.default_rng(5).integers(0, 4000, (4, height, width), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": width, "height": height, "dtype": "uint16"}
    with rasterio.open(path, "w", count=4, **profile) as target:
        target.write(data)
        target.colorinterp = [
            ColorInterp.blue,
            ColorInterp.green,
            ColorInterp.red,
            ColorInterp.undefined,
        ]
    return read_rgb8(path)


@pytest.mark.parametrize("fmt", ["llava", "sharegpt"])
def test_render_images_gives_trainers_8bit_rgb_copies_once(tmp_path: Path, fmt: str) -> None:
    """A 16-bit multi-band GeoTIFF, which LLaVA's and LLaMA-Factory's PIL cannot train on, is
    written once as the 8-bit RGB PNG read_rgb8 shows, at full size; PNGs stay as they are; a
    second export reuses the copy; an image of another size than its instruction is rejected."""
    expected = _bgrn_geotiff(tmp_path / "data/scenes/s.tif")
    Image.new("RGB", (200, 100), (9, 9, 9)).save(tmp_path / "data/scenes/p.png")
    _bgrn_geotiff(tmp_path / "data/scenes/small.tif", width=50)
    source = tmp_path / "i.jsonl"
    tif = [_instruction(id=f"t{k}", image="scenes/s.tif") for k in range(3)]
    others = [
        _instruction(id="png", image="scenes/p.png"),
        _instruction(id="small", image="scenes/small.tif"),
    ]
    write_jsonl(source, tif + others)
    out, copies = tmp_path / "train/o.json", tmp_path / "train/rendered"
    options = {"fmt": fmt, "image_root": tmp_path / "data", "render_images": copies}
    summary = export_instructions(source, out, skip_bad=True, **options)
    items = json.loads(out.read_text())
    images = [item.get("image") or item["images"][0] for item in items]
    assert images == ["rendered/scenes/s.tif.png"] * 3 + ["../data/scenes/p.png"]
    with Image.open(out.parent / images[0]) as copy:
        assert copy.mode == "RGB" and np.array_equal(np.asarray(copy), expected)
    assert (summary.images_rendered, summary.images_reused) == (1, 0)
    assert "small.tif is 50x100, the instruction says 200x100" in summary.rejects[0].reason
    written = (copies / "scenes/s.tif.png").stat().st_mtime_ns
    again = export_instructions(source, out, skip_bad=True, **options)
    assert (again.images_rendered, again.images_reused) == (0, 1)
    assert (copies / "scenes/s.tif.png").stat().st_mtime_ns == written


def test_render_images_through_the_cli(tmp_path: Path) -> None:
    _bgrn_geotiff(tmp_path / "data/s.tif")
    source = tmp_path / "i.jsonl"
    write_jsonl(source, [_instruction(image="s.tif")])
    out = tmp_path / "o.json"
    command = ["export", str(source), "-o", str(out), "--image-root", str(tmp_path / "data")]
    result = CliRunner().invoke(app, [*command, "--render-images", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    assert "images rendered to 8-bit RGB PNG: 1 written, 0 up to date" in result.output
    assert json.loads(out.read_text())[0]["image"] == "png/s.tif.png"
