"""The tiny-model pipeline: records → instruct → export → finetune → predict → evaluate.

The model is a random-weight tiny LLaVA (rsgpt4v.finetune.tiny): its answers are noise, so the
run checks plumbing (every task scored, settings and data versions recorded), and an oracle
run of the reference answers checks that references and scoring agree (every metric perfect).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")

from rsgpt4v.cli import app
from rsgpt4v.evaluate.predict import GenerationSettings, write_predictions
from rsgpt4v.evaluate.predictions import read_predictions
from rsgpt4v.evaluate.references import items_from_instructions, render_text
from rsgpt4v.families import BoxConvention
from rsgpt4v.schema import QA, ImageInfo, Object, Record, write_jsonl

LLAVA = BoxConvention("llava")  # LLaVA-1.5: 0-1 of the padded square

runner = CliRunner()
TASKS = "brief_caption,classification,counting,grounding,vqa"


@pytest.fixture(scope="module", autouse=True)
def _offline(monkeypatch_module: pytest.MonkeyPatch) -> None:
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch_module.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rsgpt4v.finetune.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "llava", "llava")


def _record(root: Path, split: str, name: str, colour: tuple[int, int, int]) -> Record:
    from PIL import Image

    Image.new("RGB", (64, 48), colour).save(root / f"{name}.png")
    return Record(
        id=f"toy/{split}/{name}",
        dataset="toy",
        split=split,
        image=ImageInfo(path=f"{name}.png", width=64, height=48),
        objects=[
            Object(id=0, category="plane", bbox=[4, 4, 12, 10]),
            Object(id=1, category="plane", bbox=[30, 20, 10, 12]),
            Object(id=2, category="ship", bbox=[40, 2, 8, 6]),
        ],
        captions=["Two planes and a ship near the runway."],
        label="airport" if split == "train" else "harbor",
        qa=[QA(question="Is there a runway?", answer="yes", type="presence")],
    )


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records and rule instructions of two train and two test images."""
    from rsgpt4v.instruct import generate_instructions

    root = tmp_path_factory.mktemp("toy")
    records = [
        _record(root, "train", "a", (200, 30, 30)),
        _record(root, "train", "b", (30, 200, 30)),
        _record(root, "test", "c", (30, 30, 200)),
        _record(root, "test", "d", (200, 200, 30)),
    ]
    write_jsonl(root / "records.jsonl", records)
    generate_instructions(root / "records.jsonl", root / "instructions.jsonl", tasks=TASKS)
    return root


def _invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _finetune(toy: Path, model: Path, out: Path) -> Path:
    """Two LoRA steps on the train split (rsgpt4v.finetune); the adapter folder."""
    from rsgpt4v.finetune.config import FinetuneConfig
    from rsgpt4v.finetune.train import run_finetune

    train = out / "train.jsonl"
    lines = (toy / "instructions.jsonl").read_text().splitlines(keepends=True)
    train.write_text("".join(line for line in lines if '"toy/train/' in line))
    config = FinetuneConfig.model_validate(
        {
            "model": str(model),
            "family": "llava",
            "method": "lora",
            "data": [{"path": str(train), "image_root": str(toy)}],
            "output_dir": str(out / "finetune"),
            "max_steps": 2,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"batch_size": 4, "eval_fraction": 0.0, "report_to": [], "num_workers": 0},
        }
    )
    assert config.square_pad  # LLaVA-1.5 boxes: relative to the image padded to a square
    return run_finetune(config).adapter


def test_export_finetune_predict_evaluate_end_to_end(
    toy: Path, tiny_llava: Path, tmp_path: Path
) -> None:
    _invoke("export", toy / "instructions.jsonl", "--format", "llava", "-o", tmp_path / "l.json")
    adapter = _finetune(toy, tiny_llava, tmp_path)
    predictions = tmp_path / "predictions.jsonl"
    output = _invoke(
        "predict", toy / "instructions.jsonl", "--split", "test", "--model", tiny_llava,
        "--adapter", adapter, "--image-root", toy,
        "--batch-size", "4", "--max-new-tokens", "6", "-o", predictions,
    )  # fmt: skip
    lines = list(read_predictions(predictions))
    assert f"{len(lines)} predictions" in output
    assert {p.record_id for p in lines} == {"toy/test/c", "toy/test/d"}
    assert all(isinstance(p.prediction, str) and p.adapter == str(adapter) for p in lines)
    run = json.loads(predictions.with_name("predictions.jsonl.run.json").read_text())
    assert run["generation"]["do_sample"] is False and run["benchmark"] == "instructions"
    assert run["square_pad"] is True and len(run["data"]["source"]["sha256"]) == 64
    assert {
        "model: config.json",
        "adapter: adapter_model.safetensors",
        "adapter: finetune.yaml",
    } <= set(run["versions"])

    _invoke("evaluate", predictions, "--no-meteor", "-o", tmp_path / "tiny")
    tiny = json.loads((tmp_path / "tiny" / "results.json").read_text())
    assert set(tiny["tasks"]) == set(TASKS.split(","))
    assert (tiny["run"]["model"], tiny["run"]["adapter"]) == (str(tiny_llava), str(adapter))
    assert tiny["run"]["versions"] == run["versions"]
    assert "adapter: finetune.yaml" in (tmp_path / "tiny" / "results.md").read_text()
    for scores in tiny["tasks"].values():
        assert scores["n"] > 0 and scores["unanswered"] == 0

    oracle = tmp_path / "oracle.jsonl"
    answers = {p.id: render_text(p.references[0], p, LLAVA, answer=True) for p in lines}
    oracle.write_text(
        "".join(json.dumps({"id": i, "prediction": a}) + "\n" for i, a in answers.items())
    )
    _invoke("evaluate", oracle, "--items", predictions, "--no-meteor", "-o", tmp_path / "oracle")
    perfect = json.loads((tmp_path / "oracle" / "results.json").read_text())["tasks"]
    assert perfect["vqa"]["accuracy"] == 1.0
    assert perfect["counting"]["exact_match"] == 1.0 and perfect["counting"]["mae"] == 0.0
    assert perfect["classification"]["accuracy"] == 1.0
    grounding = perfect["grounding"]
    assert grounding["acc@0.7"] == grounding["ceiling"]["acc@0.7"] == 1.0
    assert (
        grounding["miou"] == pytest.approx(grounding["ceiling"]["miou"]) and grounding["miou"] > 0.9
    )
    assert perfect["brief_caption"]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)

    table = _invoke("compare-runs", tmp_path / "tiny", tmp_path / "oracle")
    assert "| vqa / accuracy |" in table and "| counting / exact_match |" in table


def test_batched_left_padded_generation_equals_one_at_a_time(
    toy: Path, tiny_llava: Path, tmp_path: Path
) -> None:
    items = list(items_from_instructions(toy / "instructions.jsonl", split="test"))[:5]
    answers = {}
    for batch in (1, 5):
        out = tmp_path / f"b{batch}.jsonl"
        settings = GenerationSettings(batch_size=batch, max_new_tokens=6)
        write_predictions(items, out, model_dir=tiny_llava, image_root=toy, settings=settings)
        answers[batch] = [p.prediction for p in read_predictions(out)]
    assert answers[1] == answers[5]
    assert any(answers[1])  # the model did say something
    assert len({len(i.question) for i in items}) > 1  # prompts of different lengths: padding


def test_a_held_out_split_of_a_llava_export_scores_like_its_instructions(
    toy: Path, tmp_path: Path
) -> None:
    export = tmp_path / "llava.json"
    _invoke("export", toy / "instructions.jsonl", "--format", "llava", "-o", export)
    items = tmp_path / "items.jsonl"
    _invoke(
        "predict", export, "--benchmark", "export", "--split", "test", "--image-root", toy,
        "--boxes", "llava", "--items-only", "-o", items,
    )  # fmt: skip
    from_export = {p.id: p for p in read_predictions(items)}
    from_instructions = {
        i.id: i for i in items_from_instructions(toy / "instructions.jsonl", split="test")
    }
    assert from_export.keys() == from_instructions.keys()
    for item_id, exported in from_export.items():
        original = from_instructions[item_id]
        assert (exported.task, exported.metric, exported.count, exported.label) == (
            original.task, original.metric, original.count, original.label
        )  # fmt: skip
        assert exported.references == [
            render_text(original.references[0], original, LLAVA, answer=True)
        ]
        flat = [v for box in exported.boxes for v in box]
        step = max(LLAVA.view(*original.image_size).quantisation())
        assert flat == pytest.approx([v for box in original.boxes for v in box], abs=step + 1e-9)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(
            json.dumps({"id": i, "prediction": p.references[0]}) + "\n"
            for i, p in from_export.items()
        )
    )
    _invoke("evaluate", answers, "--items", items, "--no-meteor", "-o", tmp_path / "run")
    tasks = json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]
    assert tasks["grounding"]["acc@0.7"] == 1.0 and tasks["vqa"]["accuracy"] == 1.0


def test_square_pad_shows_the_image_centred_on_the_processors_mean_colour(
    tiny_llava: Path,
) -> None:
    from PIL import Image
    from transformers import AutoProcessor

    from rsgpt4v.evaluate.predict import mean_colour
    from rsgpt4v.raster import pad_to_square

    background = mean_colour(AutoProcessor.from_pretrained(tiny_llava))
    assert background == (122, 116, 104)  # CLIP's image mean x 255, truncated as LLaVA does
    padded = pad_to_square(Image.new("RGB", (40, 20), (255, 0, 0)), background)
    assert padded.size == (40, 40)
    assert padded.getpixel((0, 0)) == background and padded.getpixel((0, 39)) == background
    assert padded.getpixel((0, 10)) == padded.getpixel((39, 29)) == (255, 0, 0)


def test_predict_prompts_a_llava_adapter_exactly_as_it_was_trained(
    toy: Path, tiny_llava: Path, tmp_path: Path
) -> None:
    """Vicuna system prompt, one BOS, and the training text of the same question."""
    from PIL import Image
    from transformers import AutoProcessor

    from rsgpt4v.evaluate.predict import processor_folder, prompt_inputs
    from rsgpt4v.finetune.collate import ChatEncoder
    from rsgpt4v.schema import Message

    adapter = _finetune(toy, tiny_llava, tmp_path)
    processor = AutoProcessor.from_pretrained(processor_folder(tiny_llava, adapter))
    image = Image.new("RGB", (48, 48), (30, 30, 200))
    question = "How many planes are in the image?"
    ids = prompt_inputs(processor, [image], [question])["input_ids"][0]
    tokenizer = processor.tokenizer
    text = tokenizer.decode(ids)
    assert int((ids == tokenizer.bos_token_id).sum()) == 1 and text.startswith("<s>A chat between")
    assert "questions. USER: <image>" in text and text.endswith(f"\n{question} ASSISTANT:")
    trained = ChatEncoder(adapter, "llava", model_config=processor_config(tiny_llava)).encode(
        [Message(role="user", content=question), Message(role="assistant", content="Two.")], image
    )["input_ids"]
    assert trained[: len(ids)].tolist() == ids.tolist()  # the prompt is training's prefix

    from rsgpt4v.finetune.merge import merge_adapter

    merged = merge_adapter(adapter.parent, tmp_path / "merged").output
    merged_ids = prompt_inputs(AutoProcessor.from_pretrained(merged), [image], [question])
    assert merged_ids["input_ids"][0].tolist() == ids.tolist()  # a merged model: one BOS too


def processor_config(model: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model)


def test_vicuna_turns_join_as_llavas_conv_vicuna_v1(tiny_llava: Path) -> None:
    from rsgpt4v.finetune.collate import ChatEncoder
    from rsgpt4v.schema import Message

    encoder = ChatEncoder(tiny_llava, "llava")
    turns = [
        Message(role="user", content="Q1"),
        Message(role="assistant", content="A1"),
        Message(role="user", content="Q2"),
        Message(role="assistant", content="A2"),
    ]
    text = encoder.tokenizer.decode(encoder.encode(turns)["input_ids"])
    assert text.endswith(" USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>")


def test_finetune_holds_out_a_split_that_predict_reads_from_the_run_folder(
    toy: Path, tiny_llava: Path, tmp_path: Path
) -> None:
    from rsgpt4v.finetune.config import FinetuneConfig
    from rsgpt4v.finetune.train import run_finetune
    from rsgpt4v.schema import Instruction, read_jsonl

    source = toy / "instructions.jsonl"
    config = FinetuneConfig.model_validate(
        {
            "model": str(tiny_llava),
            "stages": [
                {"name": "captions", "max_steps": 1, "data": [
                    {"path": str(source), "image_root": str(toy), "tasks": ["brief_caption"]}]},
                {"name": "all", "max_steps": 1, "data": [
                    {"path": str(source), "image_root": str(toy)}]},
            ],
            "output_dir": str(tmp_path / "run"),
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"batch_size": 2, "eval_fraction": 0.3, "report_to": [], "num_workers": 0},
        }
    )  # fmt: skip
    run_finetune(config)
    held = list(read_jsonl(tmp_path / "run" / "heldout.jsonl", Instruction))
    everything = list(read_jsonl(source, Instruction))
    assert 0 < len(held) < len(everything)
    predictions = tmp_path / "p.jsonl"
    _invoke(
        "predict", tmp_path / "run", "--image-root", toy, "--max-new-tokens", "4",
        "-o", predictions,
    )  # fmt: skip
    lines = list(read_predictions(predictions))
    assert {p.id for p in lines} <= {i.id for i in held} and lines
    assert all(p.adapter == str(tmp_path / "run" / "adapter") and p.square_pad for p in lines)
