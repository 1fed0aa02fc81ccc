"""Model families: one box convention from training target to score, per family.

The round trip a user's loop makes: the records' boxes become the training targets finetune
feeds the model; a model that reproduces them exactly is scored by evaluate, which must give
the ceiling its box convention allows (1.0 for Qwen2.5-VL's pixels and for objects larger than
a grid cell), on square and non-square images, with LLaVA's padding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rsgpt4v.cli import app
from rsgpt4v.evaluate.predictions import Prediction
from rsgpt4v.evaluate.references import item_from_instruction
from rsgpt4v.evaluate.scoring import score_predictions
from rsgpt4v.families import NAMES, BoxConvention, smart_resize
from rsgpt4v.schema import Instruction, Message, Region, Source, write_jsonl

SIZES = [(256, 256), (1024, 1024), (4000, 3000), (3000, 4000)]
QWEN25VL_PATCH, QWEN25VL_MERGE = 14, 2


def _grounding(width: int, height: int, boxes: list[list[float]]) -> Instruction:
    refs = " and ".join(f"<ref:{n}>" for n in range(len(boxes)))
    return Instruction(
        id=f"toy/test/{width}x{height}#grounding-0",
        record_id=f"toy/test/{width}x{height}",
        image=f"images/{width}x{height}.png",
        image_size=[width, height],
        task="grounding",
        source=Source(generator="rules", template="grounding/v1"),
        messages=[
            Message(role="user", content="<image>\nWhere are the storage tanks?"),
            Message(role="assistant", content=f"There are {len(boxes)} storage tanks: {refs}."),
        ],
        regions={str(n): Region(bbox=box, category="storage-tank") for n, box in enumerate(boxes)},
    )


def _objects(width: int, height: int) -> list[list[float]]:
    """Objects of 4-12% of the image (several cells of every grid), one in the far corner."""
    return [
        [0.3 * width + 0.5, 0.2 * height + 0.25, 0.041 * width, 0.063 * height],
        [0.6 * width, 0.55 * height, 0.12 * width, 0.08 * height],
        [0.95 * width, 0.94 * height, 0.05 * width, 0.06 * height],
    ]


def _qwen25vl_processor(max_pixels: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    return Qwen2VLImageProcessorPil(
        patch_size=QWEN25VL_PATCH, merge_size=QWEN25VL_MERGE, min_pixels=3136, max_pixels=max_pixels
    )


def _scored(instruction: Instruction, trained: BoxConvention, answer: str) -> dict[str, object]:
    """Evaluate's grounding scores of ``answer`` to the instruction, as predict records it."""
    item = item_from_instruction(instruction)
    fields = {**item.model_dump(), **trained.as_fields(), "prediction": answer}
    scores = score_predictions([Prediction.model_validate(fields)])
    return scores["grounding"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", NAMES)
def test_a_model_that_answers_its_training_targets_scores_the_ceiling(
    family: str, size: tuple[int, int]
) -> None:
    from rsgpt4v.finetune.config import FinetuneConfig
    from rsgpt4v.finetune.data import Sample

    width, height = size
    instruction = _grounding(width, height, _objects(width, height))
    model_family = family if family in ("llava", "qwen2vl", "qwen25vl") else "other"
    config = FinetuneConfig.model_validate(
        {
            "model": "m",
            "data": ["instructions.jsonl"],
            "family": model_family,
            "box_style": family,
            "components": {"language": "model.language_model"},
            "max_pixels": 589824 if family == "qwen25vl" else None,
        }
    )
    trained = config.boxes
    if family == "qwen25vl":  # finetune takes the budget of the model's own processor
        trained = trained.with_processor(_qwen25vl_processor(589824))
    target = Sample(None, instruction=instruction).render(trained)[-1].content
    assert "<ref:" not in target
    scores = _scored(instruction, trained, target)
    assert scores["acc@0.5"] == scores["ceiling"]["acc@0.5"] == 1.0
    assert scores["acc@0.7"] == scores["ceiling"]["acc@0.7"]
    assert scores["miou"] == pytest.approx(scores["ceiling"]["miou"])
    if family == "llava":  # 2 decimals of the padded square
        assert trained.padded and re.search(r"\[0\.\d\d, 0\.\d\d, 0\.\d\d, 0\.\d\d\]", target)


def test_a_coarse_grid_reports_a_ceiling_below_one_and_reaches_it() -> None:
    """A 3 px car on MiniGPT-v2's 0-100 grid of a 4000 px tile is one grid cell of 40 px."""
    instruction = _grounding(4000, 3000, [[1000.0, 1000.0, 3.0, 3.0], [2000, 1500, 400, 300]])
    trained = BoxConvention("minigptv2")
    target = Sample_render(instruction, trained)
    scores = _scored(instruction, trained, target)
    assert scores["ceiling"]["acc@0.5"] == 0.5
    assert scores["acc@0.5"] == scores["ceiling"]["acc@0.5"]


def Sample_render(instruction: Instruction, boxes: BoxConvention) -> str:
    from rsgpt4v.finetune.data import Sample

    return Sample(None, instruction=instruction).render(boxes)[-1].content


@pytest.mark.parametrize("size", [*SIZES, (1000, 750), (800, 800), (97, 1300)])
@pytest.mark.parametrize("max_pixels", [589824, 1003520, 12845056])
def test_smart_resize_is_qwens(size: tuple[int, int], max_pixels: int) -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        smart_resize as qwens,
    )

    width, height = size
    assert smart_resize(height, width, 28, 3136, max_pixels) == qwens(
        height, width, 28, 3136, max_pixels
    )


@pytest.mark.parametrize("size", [(1024, 1024), (4000, 3000), (800, 800)])
def test_the_qwen25vl_frame_is_the_image_its_processor_shows(size: tuple[int, int]) -> None:
    """The processor's patch grid times the patch size is the convention's shown size."""
    from PIL import Image

    width, height = size
    processor = _qwen25vl_processor(589824)
    grid = processor(images=[Image.new("RGB", size)], return_tensors="np")["image_grid_thw"][0]
    shown = (int(grid[2]) * QWEN25VL_PATCH, int(grid[1]) * QWEN25VL_PATCH)
    convention = BoxConvention("qwen25vl").with_processor(processor)
    assert convention.shown_size(width, height) == shown
    assert convention.max_pixels == 589824 and convention.patch_factor == 28


def _export(tmp_path: Path, instruction: Instruction, *flags: str) -> tuple[list[dict], str]:
    """The exported items and what the command printed."""
    from typer.testing import CliRunner

    source = tmp_path / "instructions.jsonl"
    write_jsonl(source, [instruction])
    out = tmp_path / "train.json"
    result = CliRunner().invoke(
        app, ["export", str(source), "--format", "sharegpt", "-o", str(out), *flags]
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_qwen25vl_export_writes_pixels_of_the_resized_image(tmp_path: Path) -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        smart_resize as qwens,
    )

    boxes = [[100.0, 200.0, 300.0, 100.0], [500.0, 600.0, 250.0, 150.0]]
    instruction = _grounding(1024, 1024, boxes)
    (item,), printed = _export(
        tmp_path, instruction, "--boxes", "qwen25vl", "--max-pixels", "589824"
    )
    answer = item["messages"][-1]["content"]
    height, width = qwens(1024, 1024, 28, 3136, 589824)  # LLaMA-Factory's 768 x 768 budget
    assert (width, height) == (756, 756)
    sx, sy = width / 1024, height / 1024
    expected = [
        {
            "bbox_2d": [round(x * sx), round(y * sy), round((x + w) * sx), round((y + h) * sy)],
            "label": "storage-tank",
        }
        for x, y, w, h in boxes
    ]
    written = json.loads(answer[answer.index("[") : answer.rindex("]") + 1])
    assert "give --render-images" in printed  # LLaMA-Factory would resize by its own rule
    assert written == expected  # Qwen's cookbook form: a JSON list of labelled boxes
    assert '"label"' not in item["messages"][0]["content"]


def test_qwen2vl_answers_name_the_object_and_stay_on_the_grid(tmp_path: Path) -> None:
    instruction = _grounding(640, 480, [[0.0, 0.0, 640.0, 480.0], [10.0, 20.0, 30.0, 40.0]])
    (item,), _ = _export(tmp_path, instruction, "--boxes", "qwen2vl")
    answer = item["messages"][-1]["content"]
    assert answer.count("<|object_ref_start|>storage-tank<|object_ref_end|><|box_start|>") == 2
    assert "1000" not in answer and "(999,999)" in answer  # the grid is [0, 1000)
    assert "object_ref" not in item["messages"][0]["content"]


def test_llava_export_is_llavas_own_by_default_and_plain_on_request(tmp_path: Path) -> None:
    instruction = _grounding(1001, 500, [[0.0, 0.0, 1001.0, 500.0]])
    (padded,), _ = _export(tmp_path, instruction, "--format", "llava")
    # expand2square: 1001 x 500 pasted at y = (1001 - 500) // 2 = 250 on a 1001 square.
    assert padded["conversations"][-1]["value"].endswith("[0.00, 0.25, 1.00, 0.75].")
    (plain,), _ = _export(
        tmp_path, instruction, "--format", "llava", "--no-square-pad", "--box-decimals", "3"
    )
    assert plain["conversations"][-1]["value"].endswith("[0.000, 0.000, 1.000, 1.000].")


def test_render_images_writes_qwen25vl_images_at_the_size_of_their_boxes(
    tmp_path: Path,
) -> None:
    from PIL import Image

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (1024, 1024), (10, 20, 30)).save(root / "images/1024x1024.png")
    instruction = _grounding(1024, 1024, [[100.0, 200.0, 300.0, 100.0]])
    (item,), printed = _export(
        tmp_path, instruction, "--boxes", "qwen25vl", "--max-pixels", "589824",
        "--image-root", str(root), "--render-images", str(tmp_path / "shown"),
    )  # fmt: skip
    with Image.open(tmp_path / item["images"][0]) as shown:
        assert shown.size == (756, 756)
    assert "render-images" not in printed


def test_unknown_family_and_misplaced_settings_are_clear_errors() -> None:
    from rsgpt4v.errors import BoxFormatError

    with pytest.raises(BoxFormatError, match="unknown model family / box style 'yolo'"):
        BoxConvention("yolo")
    with pytest.raises(BoxFormatError, match="max/min pixels apply to qwen25vl"):
        BoxConvention("llava", max_pixels=1000)
    with pytest.raises(BoxFormatError, match="never padded"):
        BoxConvention("qwen25vl", square_pad=True)
