"""The shipped fine-tuning configs load, and the accelerate configs point at files that exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rsgpt4v.finetune import config as config_module
from rsgpt4v.finetune.config import BUNDLED_CONFIGS, FinetuneConfig, load_config

REQUIRED = {
    "llava-1.5-7b-lora": ("llava", "lora"),
    "llava-1.5-7b-qlora": ("llava", "qlora"),
    "llava-1.5-7b-moe-lora": ("llava", "moe_lora"),
    "qwen2.5-vl-7b-lora": ("qwen25vl", "lora"),
    "tiny-llava": ("llava", "lora"),
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_shipped_config_loads(name):
    config = load_config(BUNDLED_CONFIGS / f"{name}.yaml")
    assert (config.family, config.method) == REQUIRED[name]
    assert config.curriculum()


def test_seven_b_configs_follow_the_recipes():
    lora = load_config("llava-1.5-7b-lora")
    assert (lora.lora.r, lora.lora.alpha, lora.lora.projector) == (128, 256, "full")
    assert [s.name for s in lora.curriculum()] == ["captions", "all-tasks"]
    qwen = load_config("qwen2.5-vl-7b-lora")
    assert qwen.box_style == "qwen25vl" and qwen.max_pixels == 1003520
    moe = load_config("llava-1.5-7b-moe-lora")
    assert moe.moe["num_experts"] == 4 and moe.moe["top_k"] == 2


def test_seven_b_configs_state_the_global_batch():
    """LLaVA-1.5's 128 samples per step whatever the GPU count; speed settings on auto."""
    from rsgpt4v.finetune.plan import plan_batches

    for name in ("llava-1.5-7b-lora", "llava-1.5-7b-qlora", "llava-1.5-7b-moe-lora"):
        train = load_config(name).train
        assert (train.global_batch_size, train.grad_accumulation) == (128, None), name
        assert [plan_batches(train, n).accumulation for n in (1, 2, 8)] == [32, 16, 4], name
        assert (train.liger, train.tf32, train.optim) == ("auto", "auto", "auto"), name
        assert train.max_grad_norm == 1.0 and train.torch_compile is False, name
    qwen = load_config("qwen2.5-vl-7b-lora").train
    assert plan_batches(qwen, 1).global_batch == plan_batches(qwen, 4).global_batch == 32


@pytest.mark.parametrize(
    "name", ["ddp.yaml", "fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"]
)
def test_accelerate_configs_parse_and_reference_existing_files(name):
    folder = BUNDLED_CONFIGS / "accelerate"
    settings = yaml.safe_load((folder / name).read_text())
    assert settings["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    file = settings.get("deepspeed_config", {}).get("deepspeed_config_file")
    if file:
        # Paths are written relative to the repository root, where the README runs them.
        assert (folder / Path(file).name).is_file()
        stage = json.loads((folder / Path(file).name).read_text())["zero_optimization"]["stage"]
        assert stage == int(name[-6])


def test_every_field_documents_itself():
    sections = [FinetuneConfig, *(s for s in vars(config_module).values() if _is_section(s))]
    undocumented = [
        f"{section.__name__}.{name}"
        for section in sections
        for name, field in section.model_fields.items()
        if not field.description
    ]
    assert undocumented == [], "fields without a help string"


def _is_section(value) -> bool:
    return isinstance(value, type) and issubclass(value, config_module._Section)
