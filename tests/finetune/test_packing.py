"""Packing: a packed batch trains exactly as the same samples padded, on LLaVA and Qwen2/2.5-VL.

Each check runs the code ``rsgpt4v finetune`` runs (config, model loading, LoRA, encoder,
SampleDataset → PackedDataset → PadCollator) on a llava export with images of different sizes
(so Qwen's image grids differ per sample) and a text-only conversation, and compares the packed
row with the padded batch: the loss (mean over answer tokens) and every trainable gradient.
"""

from __future__ import annotations

import itertools
import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from rsgpt4v.finetune.collate import ChatEncoder, PadCollator  # noqa: E402
from rsgpt4v.finetune.config import load_config  # noqa: E402
from rsgpt4v.finetune.data import PackedDataset, SampleDataset, read_source  # noqa: E402
from rsgpt4v.finetune.methods import add_adapters, load_base_model  # noqa: E402
from rsgpt4v.finetune.packing import packed_attention  # noqa: E402

IMAGE_SIZES = [(40, 24), (24, 40), (32, 32), None, (48, 16)]
CONVERSATIONS = [
    ("how many ships are in the image ?", "there are 3 ships ."),
    ("where is the vehicle ?", "the small vehicle is at the top left of the image ."),
    ("what is the land use ?", "farmland , forest and a river ."),
    ("is there a tennis court ?", "yes ."),
    ("describe the scene in detail .", "a residential area with roads , trees and buildings ."),
]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A llava export: four images of different sizes and shapes, one text-only item."""
    from PIL import Image

    root = tmp_path_factory.mktemp("export")
    items = []
    pairs = zip(IMAGE_SIZES, CONVERSATIONS, strict=True)
    for number, (size, (question, answer)) in enumerate(pairs):
        item = {"conversations": [{"from": "human", "value": question}]}
        if size is not None:
            Image.new("RGB", size, (40 * number, 200, 90)).save(root / f"{number}.png")
            item["image"] = f"{number}.png"
            item["conversations"][0]["value"] = "<image>\n" + question
        item["conversations"].append({"from": "gpt", "value": answer})
        items.append(item)
    path = root / "llava.json"
    path.write_text(json.dumps(items))
    return path


@pytest.fixture(scope="module")
def qwen25_dir(qwen_dir, tmp_path_factory):
    """A tiny Qwen2.5-VL: the tiny Qwen2-VL's tokenizer and image processor, a 2.5 model."""
    from transformers import AutoConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out = tmp_path_factory.mktemp("tiny") / "qwen25"
    shutil.copytree(qwen_dir, out)
    qwen2 = AutoConfig.from_pretrained(qwen_dir)
    config = Qwen2_5_VLConfig(
        text_config=qwen2.text_config.to_dict(),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": qwen2.text_config.hidden_size,
            "patch_size": 4,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 16,
            "fullatt_block_indexes": [1],
        },
        image_token_id=qwen2.image_token_id,
        video_token_id=qwen2.video_token_id,
        vision_start_token_id=qwen2.vision_start_token_id,
        vision_end_token_id=qwen2.vision_end_token_id,
    )
    torch.manual_seed(1)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    return out


def _setup(model_dir, family, export):
    config = load_config(
        None,
        [
            f"model={model_dir}",
            f"family={family}",
            f"data={export}",
            "train.packing=true",
            "train.attn_implementation=sdpa",
            "train.bf16=false",
            "lora.dropout=0",
        ],
    )
    torch.manual_seed(0)
    model = add_adapters(load_base_model(config), config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # zero at init, which would leave lora_A without a gradient
            torch.nn.init.normal_(parameter, std=0.5)
    encoder = ChatEncoder(config.model, config.family)
    samples = read_source(config.data[0], config.boxes)
    dataset = SampleDataset(samples, encoder, config.boxes)
    return config, model, encoder, dataset


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


@pytest.mark.parametrize("family", ["llava", "qwen2vl", "qwen25vl"])
def test_packed_batch_has_the_loss_and_gradients_of_the_padded_batch(
    family, llava_dir, qwen_dir, qwen25_dir, export
):
    model_dir = {"llava": llava_dir, "qwen2vl": qwen_dir, "qwen25vl": qwen25_dir}[family]
    config, model, encoder, dataset = _setup(model_dir, family, export)
    assert config.train.attn_implementation == "sdpa"  # no faster path on the CPU
    assert model.config._attn_implementation == "sdpa"
    # Rows of about two samples, so a batch holds several rows and every row several samples.
    packed = PackedDataset(dataset, max_length=2 * max(dataset.lengths))
    assert len(packed) >= 2 and all(len(group) >= 1 for group in packed.groups)
    assert max(len(group) for group in packed.groups) >= 2
    collate = PadCollator(encoder.pad_token_id)
    rows = [packed[i] for i in range(len(packed))]
    batch = collate(rows)
    order = [i for group in packed.groups for i in group]
    padded = collate([dataset[i] for i in order])

    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    assert batch["input_ids"].shape[1] == sum(dataset.lengths)  # padding-free
    if family == "llava":
        assert batch["position_ids"].shape == batch["input_ids"].shape
    else:
        assert batch["position_ids"].shape == (4, *batch["input_ids"].shape)
        assert len(set(map(tuple, batch["image_grid_thw"].tolist()))) >= 3  # grids differ

    packed_loss, packed_grads = _loss_and_grads(model, batch)
    padded_loss, padded_grads = _loss_and_grads(model, padded)
    assert abs(packed_loss - padded_loss) <= 1e-5, (packed_loss, padded_loss)
    assert packed_grads.keys() == padded_grads.keys() and any("lora_A" in n for n in packed_grads)
    for name, grad in packed_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, padded_grads[name], rtol=1e-4, atol=1e-6, msg=name)

    if family != "llava":
        # The control: text positions in place of mRoPE fail the same comparison.
        flat = dict(batch, position_ids=batch["position_ids"][:1].expand(4, -1, -1))
        _, flat_grads = _loss_and_grads(model, flat)
        worst = max(
            ((flat_grads[n] - g).abs().max() / g.abs().max()).item()
            for n, g in padded_grads.items()
        )
        assert worst > 1e-2, worst


@pytest.mark.parametrize("family", ["llava", "qwen2vl"])
def test_packed_row_boundaries_as_attention_reads_them(family, llava_dir, qwen_dir, export):
    """flash-attention's varlen lengths and the sdpa mask both fall on the sample boundaries."""
    from transformers.masking_utils import create_causal_mask
    from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

    model_dir = {"llava": llava_dir, "qwen2vl": qwen_dir}[family]
    encoder = ChatEncoder(model_dir, family)
    config = load_config(None, [f"model={model_dir}", f"family={family}", f"data={export}"])
    dataset = SampleDataset(read_source(config.data[0], config.boxes), encoder, config.boxes)
    packed = PackedDataset(dataset, max_length=2 * max(dataset.lengths))
    batch = PadCollator(encoder.pad_token_id)([packed[i] for i in range(len(packed))])
    text_positions = batch["position_ids"] if family == "llava" else batch["position_ids"][0]
    lengths = [dataset.lengths[i] for group in packed.groups for i in group]
    starts = list(itertools.accumulate(lengths, initial=0))

    (cu_q, _), (max_q, _) = prepare_fa_kwargs_from_position_ids(text_positions)
    assert cu_q.tolist() == starts and max_q == max(lengths)

    text_config = encoder.config.get_text_config()
    text_config._attn_implementation = "sdpa"
    tokens = batch["input_ids"].shape[1]
    mask = create_causal_mask(
        config=text_config,
        inputs_embeds=torch.zeros(1, tokens, 4),
        attention_mask=None,
        cache=None,
        position_ids=text_positions,
    )
    expected = torch.zeros(tokens, tokens, dtype=torch.bool)
    for start, end in itertools.pairwise(starts):
        expected[start:end, start:end] = torch.ones(end - start, end - start).tril().bool()
    assert torch.equal(mask[0, 0], expected)


def test_packed_attention_takes_the_fastest_per_sample_path(monkeypatch):
    import transformers.utils as hf_utils

    monkeypatch.setattr(hf_utils, "is_flash_attn_2_available", lambda: True)
    monkeypatch.setattr(hf_utils, "is_torch_flex_attn_available", lambda: True)
    gpu = {"cuda": True, "half_precision": True}
    assert packed_attention("sdpa", "qwen2vl", **gpu) == "flash_attention_2"
    assert packed_attention(None, "llava", **gpu) == "flash_attention_2"
    assert packed_attention("eager", "llava", **gpu) == "eager"
    assert packed_attention("sdpa", "llava", cuda=False, half_precision=True) == "sdpa"
    assert packed_attention("sdpa", "llava", cuda=True, half_precision=False) == "flex_attention"
    monkeypatch.setattr(hf_utils, "is_flash_attn_2_available", lambda: False)
    assert packed_attention("sdpa", "llava", **gpu) == "flex_attention"
    assert packed_attention("sdpa", "qwen25vl", **gpu) == "sdpa"  # no flex in Qwen-VL classes

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    overrides = ["model=m", "data=a.jsonl", "train.attn_implementation=sdpa"]
    packing = load_config(None, [*overrides, "train.packing=true"])
    assert packing.train.attn_implementation == "flex_attention"
    assert load_config(None, overrides).train.attn_implementation == "sdpa"
    on_cpu = load_config(None, [*overrides, "train.packing=true", "train.use_cpu=true"])
    assert on_cpu.train.attn_implementation == "sdpa"


def test_flex_attention_skips_the_blocks_between_samples(llava_dir):
    """What packing gets on a GPU without flash-attn: a block mask, not a dense T x T one."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    from transformers import AutoConfig
    from transformers.masking_utils import create_causal_mask

    text_config = AutoConfig.from_pretrained(llava_dir).get_text_config()
    text_config._attn_implementation = "flex_attention"
    samples, length = 4, 256  # blocks of 128 tokens: 8 x 8 blocks, 2 x 2 per sample
    positions = torch.arange(length).repeat(samples)[None]
    mask = create_causal_mask(
        config=text_config,
        inputs_embeds=torch.zeros(1, samples * length, 4),
        attention_mask=None,
        cache=None,
        position_ids=positions,
    )
    from torch.nn.attention.flex_attention import BlockMask

    assert isinstance(mask, BlockMask)
    computed = int(mask.kv_num_blocks.sum()) + int(mask.full_kv_num_blocks.sum())
    assert computed == samples * 3  # per sample: two diagonal blocks and one below; causal: 36


def test_qwen_packed_training_trains_the_adapters(qwen_dir, demo, tmp_path):
    from safetensors.torch import load_file

    from rsgpt4v.finetune.train import run_finetune

    config = load_config(
        None,
        [
            f"model={qwen_dir}",
            "family=qwen2vl",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            "data.0.tasks=[brief_caption,counting,presence]",
            f"output_dir={tmp_path / 'run'}",
            "max_steps=2",
            "lora.dropout=0",
            "train.packing=true",
            "train.max_length=700",
            "train.batch_size=2",
            "train.grad_accumulation=1",
            "train.learning_rate=2e-2",
            "train.warmup=0",
            "train.report_to=[]",
            "train.num_workers=0",
            "train.eval_fraction=0",
        ],
    )
    result = run_finetune(config)
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


def test_packed_dataset_pickles_for_dataloader_workers(qwen_dir, export):
    import pickle

    encoder = ChatEncoder(qwen_dir, "qwen2vl")
    config = load_config(None, [f"model={qwen_dir}", "family=qwen2vl", f"data={export}"])
    dataset = SampleDataset(read_source(config.data[0], config.boxes), encoder, config.boxes)
    packed = PackedDataset(dataset, max_length=2 * max(dataset.lengths))
    row = packed[0]  # builds the meta-device model, which is not sent to workers
    copy = pickle.loads(pickle.dumps(packed))
    assert copy.rope_index._model is None
    assert torch.equal(copy[0]["position_ids"], row["position_ids"])
