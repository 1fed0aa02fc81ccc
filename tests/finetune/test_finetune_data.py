"""Fine-tuning inputs: config loading, reading our exports, chat template and exact loss masks.

Qwen2-VL processors need torchvision, which the CPU build of torch cannot provide; without it
the Qwen inputs are built from the tokenizer and the image processor (``encoder: manual``).
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rsgpt4v.errors import InputError  # noqa: E402
from rsgpt4v.families import BoxConvention  # noqa: E402
from rsgpt4v.finetune.collate import IGNORE_INDEX, ChatEncoder, PadCollator  # noqa: E402
from rsgpt4v.finetune.config import load_config  # noqa: E402
from rsgpt4v.finetune.data import SampleDataset, read_source, stage_samples  # noqa: E402

LLAVA = BoxConvention("llava")
from rsgpt4v.schema import Message  # noqa: E402

TURNS = [
    Message(role="system", content="You describe aerial images."),
    Message(role="user", content="how many ships are in the image ?"),
    Message(role="assistant", content="there are 3 ships ."),
    Message(role="user", content="where is the vehicle ?"),
    Message(role="assistant", content="at the top left ."),
]


def _image(size=(40, 24)):
    from PIL import Image

    return Image.new("RGB", size, (200, 30, 30))


def _expected_labels(ids: torch.Tensor, tokenizer, answers: list[str]) -> torch.Tensor:
    """Labels built independently: each answer's tokens, found in order, and nothing else."""
    expected = torch.full_like(ids, IGNORE_INDEX)
    start = 0
    for answer in answers:
        pattern = tokenizer.encode(answer, add_special_tokens=False)
        for at in range(start, len(ids) - len(pattern) + 1):
            if ids[at : at + len(pattern)].tolist() == pattern:
                expected[at : at + len(pattern)] = ids[at : at + len(pattern)]
                start = at + len(pattern)
                break
        else:
            raise AssertionError(f"answer {answer!r} not found in the encoded ids")
    return expected


def test_config_yaml_overrides_and_family_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: m\nfamily: qwen25vl\ndata: a.jsonl\nlora: {r: 4}\n")
    config = load_config(path, ["lora.r=32", "train.learning_rate=1e-4", "data.0.weight=2"])
    assert config.lora.r == 32 and config.train.learning_rate == 1e-4
    assert config.box_style == "qwen25vl" and config.square_pad is False
    assert config.components.projector == "model.visual.merger"
    assert config.curriculum()[0].data[0].weight == 2
    assert load_config(None, ["model=m", "data=a.jsonl"]).box_style == "llava"
    with pytest.raises(InputError, match=r"lora\.rank"):
        load_config(path, ["lora.rank=3"])
    with pytest.raises(InputError, match="key=value"):
        load_config(path, ["lora.r"])


def test_bundled_config_by_name():
    config = load_config("tiny-llava")
    assert config.family == "llava" and config.lora.projector == "full"


def test_llava_labels_are_the_assistant_tokens_exactly(llava_dir):
    encoder = ChatEncoder(llava_dir, "llava")
    assert encoder.mode == "processor"
    encoded = encoder.encode(TURNS, _image())
    ids, labels = encoded["input_ids"], encoded["labels"]
    expected = _expected_labels(
        ids, encoder.tokenizer, [" there are 3 ships .</s>", " at the top left .</s>"]
    )
    assert torch.equal(labels, expected)
    assert int((ids == encoder.image_token_id).sum()) == 16
    assert bool((labels[ids == encoder.image_token_id] == IGNORE_INDEX).all())
    text = encoder.tokenizer.decode(ids)
    assert text.startswith("<s>You describe aerial images. USER: <image>")


def test_manual_llava_encoding_equals_the_processor(llava_dir):
    processor = ChatEncoder(llava_dir, "llava")
    manual = ChatEncoder(llava_dir, "llava", mode="manual")
    a, b = processor.encode(TURNS, _image()), manual.encode(TURNS, _image())
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert processor.estimate_length(TURNS, (40, 24)) == len(a["input_ids"])


def test_qwen_labels_image_tokens_and_padding(qwen_dir):
    encoder = ChatEncoder(qwen_dir, "qwen2vl")
    long = encoder.encode(TURNS, _image((40, 24)))
    short = encoder.encode(TURNS[:3], _image((24, 40)))
    ids = long["input_ids"]
    expected = _expected_labels(
        ids, encoder.tokenizer, ["there are 3 ships .<|im_end|>", "at the top left .<|im_end|>"]
    )
    assert torch.equal(long["labels"], expected)
    grid = long["image_grid_thw"][0]
    assert int((ids == encoder.image_token_id).sum()) == int(grid.prod()) // 4 == 15
    assert encoder.estimate_length(TURNS, (40, 24)) == len(ids)
    batch = PadCollator(encoder.pad_token_id)([short, long])
    pad = batch["attention_mask"] == 0
    assert pad.any() and bool((batch["labels"][pad] == IGNORE_INDEX).all())
    assert bool((batch["input_ids"][pad] == encoder.pad_token_id).all())
    assert torch.equal(
        batch["mm_token_type_ids"].bool(), batch["input_ids"] == encoder.image_token_id
    )


def test_qwen_max_pixels_caps_the_image_tokens(qwen_dir):
    capped = ChatEncoder(qwen_dir, "qwen2vl", max_pixels=256)
    encoded = capped.encode(TURNS, _image((64, 64)))
    count = int((encoded["input_ids"] == capped.image_token_id).sum())
    assert count == capped.num_image_tokens(64, 64) == 4  # 16x16 pixels = 4x4 patches / 2x2
    assert ChatEncoder(qwen_dir, "qwen2vl").num_image_tokens(64, 64) > count


def test_conversation_without_answer_tokens_is_refused(llava_dir):
    encoder = ChatEncoder(llava_dir, "llava")
    with pytest.raises(InputError, match="no assistant tokens"):
        encoder.encode(TURNS[:2], _image())


def _grounding_source(demo):
    """The demo's grounding instructions as one data source."""
    config = load_config(
        None,
        [
            "model=m",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            "data.0.tasks=[grounding]",
        ],
    )
    return config.data[0]


def test_instructions_render_boxes_in_each_family_style(demo, llava_dir, qwen_dir):
    source = _grounding_source(demo)
    samples = read_source(source, LLAVA)
    assert samples and all(s.instruction.task == "grounding" for s in samples)
    llava_set = SampleDataset(samples, ChatEncoder(llava_dir, "llava"), LLAVA)
    qwen_set = SampleDataset(samples, ChatEncoder(qwen_dir, "qwen2vl"), BoxConvention("qwen2vl"))
    llava_text = llava_set.encoder.tokenizer.decode(llava_set[0]["input_ids"])
    qwen_text = qwen_set.encoder.tokenizer.decode(qwen_set[0]["input_ids"])
    assert "<ref:" not in llava_text and "<ref:" not in qwen_text
    assert "[0." in llava_text and "<|box_start|>(" in qwen_text
    assert llava_set.lengths[0] == len(llava_set[0]["input_ids"])


def test_qwen25vl_boxes_are_pixels_of_the_resized_image(demo, qwen_dir):
    from rsgpt4v.boxfmt import parse_boxes

    source = _grounding_source(demo)
    sample = read_source(source, BoxConvention("qwen25vl"))[0]
    encoder = ChatEncoder(qwen_dir, "qwen2vl")
    dataset = SampleDataset([sample], encoder, BoxConvention("qwen25vl"))
    text = encoder.tokenizer.decode(dataset[0]["input_ids"])
    width, height = sample.instruction.image_size
    shown_w, shown_h = encoder.shown_size(width, height)
    assert (shown_w, shown_h) != (width, height)  # the tiny processor resizes to 1024 pixels
    parsed = parse_boxes("qwen25vl", text, shown_w, shown_h)
    expected = [
        (
            x * shown_w / width,
            y * shown_h / height,
            (x + w) * shown_w / width,
            (y + h) * shown_h / height,
        )
        for x, y, w, h in sample.regions.values()
    ]
    assert len(parsed) == len(expected)
    for box, want in zip(parsed, expected, strict=True):
        got = (box.x1, box.y1, box.x2, box.y2)
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 0.5


def test_llava_export_is_read_as_written_and_split_held_out(demo):
    exported = json.loads((demo / "llava.json").read_text())
    config = load_config(
        None,
        ["model=m", f"data={demo / 'llava.json'}", "data.0.weight=2", "train.eval_fraction=0.1"],
    )
    train, held_out = stage_samples(config.curriculum()[0], LLAVA, 0.1, seed=0)
    assert len(held_out) == round(0.1 * len(exported))
    assert len(train) == 2 * (len(exported) - len(held_out))
    held_ids = {id(s) for s in held_out}
    assert not any(id(s) in held_ids for s in train)
    answers = {c["conversations"][-1]["value"] for c in exported}
    assert all(s.turns[-1].content in answers for s in train)
    assert all(s.image is not None and s.image.is_file() for s in train)


def test_sharegpt_export_is_read_with_its_system_turn(demo, tmp_path):
    from rsgpt4v.export import export_instructions

    out = tmp_path / "sharegpt" / "train.json"
    out.parent.mkdir()
    summary = export_instructions(
        demo / "instructions.jsonl",
        out,
        fmt="sharegpt",
        boxes="qwen2vl",
        image_root=demo / "sample",
    )
    config = load_config(None, ["model=m", f"data={out}"])
    samples = read_source(config.data[0], BoxConvention("llava", square_pad=False))
    assert len(samples) == summary.written
    assert all(s.image.is_file() and s.turns[-1].role == "assistant" for s in samples)
    assert any("<|box_start|>" in t.content for s in samples for t in s.turns)
    assert not any("<image>" in t.content for s in samples for t in s.turns)


def test_missing_image_names_image_root(demo):
    config = load_config(None, ["model=m", f"data={demo / 'instructions.jsonl'}"])
    with pytest.raises(InputError, match="image_root"):
        read_source(config.data[0], LLAVA)


def test_augmentation_moves_boxes_and_the_text_follows(demo, llava_dir):
    from rsgpt4v.boxfmt import render_box
    from rsgpt4v.finetune.augment import BoxAwareAugment, ops_safe_for

    source = load_config(
        None,
        [
            "model=m",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            "data.0.tasks=[grounding, region_caption, region_identification]",
        ],
    ).data[0]
    samples = [
        s
        for s in read_source(source, BoxConvention("pixel"))
        if s.regions and ops_safe_for(s.raw_text, ["vflip"]) == ["vflip"]
    ]
    assert samples, "the demo has region instructions whose text a vertical flip keeps true"
    encoder = ChatEncoder(llava_dir, "llava")
    flip = BoxAwareAugment(["vflip"], p=1.0, seed=0)
    dataset = SampleDataset(samples[:3], encoder, BoxConvention("pixel"), augment=flip)
    for index, sample in enumerate(dataset.samples):
        text = encoder.tokenizer.decode(dataset[index]["input_ids"])
        width, height = sample.instruction.image_size
        for x, y, w, h in sample.regions.values():
            moved = render_box("pixel", (x, height - y - h, x + w, height - y), width, height)
            assert moved in text


def test_token_budget_batches_fit_the_budget(demo, llava_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    from rsgpt4v.finetune.train import FinetuneTrainer, _training_arguments

    config = load_config(
        None,
        [
            f"model={llava_dir}",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            "train.max_tokens_per_batch=700",
            "train.num_workers=0",
            "train.report_to=[]",
        ],
    )
    stage = config.curriculum()[0]
    train, _ = stage_samples(stage, LLAVA, 0, 0)
    encoder = ChatEncoder(llava_dir, "llava")
    dataset = SampleDataset(train, encoder, LLAVA)
    trainer = FinetuneTrainer(
        model=AutoModelForImageTextToText.from_pretrained(llava_dir),
        args=_training_arguments(config, stage, tmp_path, False),
        train_dataset=dataset,
        data_collator=PadCollator(encoder.pad_token_id),
        finetune=config,
        lengths=dataset.lengths,
    )
    sizes = []
    for batch in trainer.get_train_dataloader():
        rows, width = batch["input_ids"].shape
        assert rows * width <= 700 or rows == 1
        sizes.append(rows)
    assert sum(sizes) == len(dataset) and max(sizes) > 1


def test_packed_rows_give_the_loss_of_the_samples_apart(demo, llava_dir):
    from transformers import AutoModelForImageTextToText

    from rsgpt4v.finetune.data import PackedDataset

    source = load_config(
        None,
        [
            "model=m",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            "data.0.tasks=[counting, presence]",
        ],
    ).data[0]
    encoder = ChatEncoder(llava_dir, "llava")
    dataset = SampleDataset(read_source(source, LLAVA)[:6], encoder, LLAVA)
    packed = PackedDataset(dataset, max_length=3 * max(dataset.lengths))
    assert len(packed) < len(dataset) and sorted(i for g in packed.groups for i in g) == list(
        range(6)
    )
    model = AutoModelForImageTextToText.from_pretrained(llava_dir)
    model.config.text_config.use_cache = False
    model.eval()
    collate = PadCollator(encoder.pad_token_id)
    with torch.no_grad():
        for index, group in enumerate(packed.groups):
            row = collate([packed[index]])
            assert "attention_mask" not in row
            apart = collate([dataset[i] for i in group])
            assert abs(model(**row).loss.item() - model(**apart).loss.item()) < 1e-5
