"""MoE-LoRA on the tiny LLaVA: identity at start, training in both routing modes, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.moe_lora import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    MoELoraConfig,
    apply_moe_lora,
    load_moe_lora,
    moe_aux_loss,
    moe_lora_layers,
    save_moe_lora,
)

IMAGE_TOKENS = 16  # the tiny LLaVA: 16x16 pixels, 4x4 patches


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rsgpt4v.finetune.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_llava"), "llava")


def load_base(folder: Path):
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(folder, attn_implementation="sdpa")


def make_batch(model) -> dict[str, torch.Tensor]:
    """Two samples: an image, then text; the second is right-padded by 5 tokens."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    text = torch.randint(10, config.text_config.vocab_size, (2, 12), generator=generator)
    image = torch.full((2, IMAGE_TOKENS), config.image_token_id)
    input_ids = torch.cat([image, text], dim=1)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -5:] = 0
    input_ids[1, -5:] = config.text_config.pad_token_id
    labels = input_ids.clone()
    labels[:, :IMAGE_TOKENS] = -100
    labels[attention_mask == 0] = -100
    pixel_values = torch.rand(2, 3, 16, 16, generator=generator)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": pixel_values,
        "labels": labels,
    }


def test_output_equals_base_at_start_and_vision_tower_untouched(tiny_llava):
    base = load_base(tiny_llava).eval()
    batch = make_batch(base)
    with torch.no_grad():
        expected = base(**batch).logits
    model = apply_moe_lora(load_base(tiny_llava).eval(), MoELoraConfig())
    with torch.no_grad():
        got = model(**batch).logits
    assert torch.equal(got, expected)
    layers = moe_lora_layers(model)
    assert len(layers) == 2 * 7  # two decoder layers x seven projections
    assert all(".language_model." in name for name in layers)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "vision" in n)


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_trains_in_both_routing_modes(tiny_llava, routing):
    torch.manual_seed(0)
    cfg = MoELoraConfig(routing=routing, num_experts=4, top_k=2)
    model = apply_moe_lora(load_base(tiny_llava), cfg)
    base_before = {
        n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad
    }
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(("router" in n or "lora_" in n) for n in trainable)
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2)
    batch = make_batch(model)
    losses = []
    router_grads = []
    for _ in range(6):
        optimizer.zero_grad()
        output = model(**batch)
        aux = moe_aux_loss(model)
        assert torch.isfinite(aux) and aux.item() > 0
        (output.loss + cfg.load_balance_coef * aux).backward()
        router_grads.append(
            max(
                layer.router.weight.grad.abs().max().item()
                for layer in moe_lora_layers(model).values()
            )
        )
        optimizer.step()
        losses.append(output.loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(g > 0 for g in router_grads)
    for name, parameter in model.named_parameters():
        if name in base_before:
            assert torch.equal(parameter, base_before[name]), name


def test_token_routing_keeps_top_k_per_token():
    from rsgpt4v.finetune.moe_lora import MoELoraLinear, RoutingContext

    layer = MoELoraLinear(
        torch.nn.Linear(16, 8), MoELoraConfig(num_experts=5, top_k=2), RoutingContext()
    )
    gates, aux = layer.route(torch.randn(3, 7, 16))
    assert gates.shape == (3, 7, 5)
    assert torch.equal((gates > 0).sum(-1), torch.full((3, 7), 2))
    torch.testing.assert_close(gates.sum(-1), torch.ones(3, 7))
    assert aux.item() >= 1.0 - 1e-6  # Switch loss is minimal (1) only for perfect balance


def test_sequence_routing_ignores_padding_and_picks_top_k_per_sequence():
    from rsgpt4v.finetune.moe_lora import MoELoraLinear, RoutingContext

    context = RoutingContext()
    layer = MoELoraLinear(
        torch.nn.Linear(16, 8), MoELoraConfig(num_experts=4, top_k=1, routing="sequence"), context
    )
    x = torch.randn(2, 6, 16)
    context.prompt_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    gates, _ = layer.route(x)
    assert gates.shape == (2, 1, 4)
    assert torch.equal((gates > 0).sum(-1), torch.ones(2, 1, dtype=torch.long))
    changed_padding = x.clone()
    changed_padding[1, 3:] = 100.0
    assert torch.equal(layer.route(changed_padding)[0], gates)
    changed_text = x.clone()
    changed_text[1, 0] = 100.0
    assert not torch.equal(layer.route(changed_text)[0][1], gates[1])


def test_save_load_gives_identical_logits(tiny_llava, tmp_path):
    torch.manual_seed(0)
    cfg = MoELoraConfig(routing="sequence", num_experts=3, top_k=2, rank=4)
    model = apply_moe_lora(load_base(tiny_llava), cfg)
    batch = make_batch(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        (model(**batch).loss + moe_aux_loss(model)).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits

    folder = save_moe_lora(model, tmp_path / "adapter")
    from safetensors.torch import load_file

    saved = load_file(str(folder / WEIGHTS_NAME))
    assert len(saved) == 3 * len(moe_lora_layers(model))
    assert all(k.endswith(("router.weight", "lora_A", "lora_B")) for k in saved)
    assert json.loads((folder / CONFIG_NAME).read_text())["routing"] == "sequence"

    reloaded = load_moe_lora(load_base(tiny_llava).eval(), folder)
    assert reloaded.moe_lora_config == cfg
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, expected)


def test_bad_settings_are_refused(tiny_llava, tmp_path):
    with pytest.raises(ValueError, match="top_k"):
        MoELoraConfig(num_experts=2, top_k=3)
    with pytest.raises(RsgptError, match=r"no nn\.Linear matches"):
        apply_moe_lora(load_base(tiny_llava), MoELoraConfig(target_modules=["qkv"]))
    model = apply_moe_lora(load_base(tiny_llava), MoELoraConfig())
    with pytest.raises(RsgptError, match="already carries"):
        apply_moe_lora(model, MoELoraConfig())
    with pytest.raises(RsgptError, match="no MoE-LoRA adapter"):
        load_moe_lora(load_base(tiny_llava), tmp_path)


def test_full_module_names_match_outside_within(tiny_llava):
    """The finetune config passes full paths (vision LoRA included); suffixes stay in `within`."""
    base = load_base(tiny_llava)
    vision = [n for n, _ in base.named_modules() if "vision_tower" in n and n.endswith("0.mlp.fc1")]
    assert len(vision) == 1
    model = apply_moe_lora(base, MoELoraConfig(target_modules=[*vision, "o_proj"]))
    assert sorted(moe_lora_layers(model)) == sorted(
        [*vision, *(f"model.language_model.layers.{i}.self_attn.o_proj" for i in range(2))]
    )


def test_sequence_routing_refuses_packed_rows(tiny_llava):
    model = apply_moe_lora(load_base(tiny_llava), MoELoraConfig(routing="sequence"))
    packed = {
        "input_ids": torch.tensor([[5, 6, 7, 8, 9]]),
        "position_ids": torch.tensor([[0, 1, 2, 0, 1]]),
    }
    with pytest.raises(RsgptError, match="packed rows"):
        model(**packed, use_cache=False)


def test_cached_generation_keeps_the_prompt_routing(tiny_llava):
    torch.manual_seed(0)
    model = apply_moe_lora(load_base(tiny_llava).eval(), MoELoraConfig(routing="sequence"))
    for layer in moe_lora_layers(model).values():
        torch.nn.init.normal_(layer.lora_B, std=0.5)
    ids = torch.tensor([[1] + [model.config.image_token_id] * IMAGE_TOKENS + [20, 21, 22]])
    prompt = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    pixels = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        model(**prompt, pixel_values=pixels)
    routed = {name: layer._prompt_gates.clone() for name, layer in moe_lora_layers(model).items()}
    output = model.generate(**prompt, pixel_values=pixels, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == ids.shape[1] + 3
    for name, layer in moe_lora_layers(model).items():
        # generate's prefill may sum in another order: equal up to float rounding
        torch.testing.assert_close(layer._prompt_gates, routed[name], msg=name)


def test_wraps_a_bitsandbytes_4bit_base(tmp_path):
    """QLoRA-style: MoE-LoRA experts on a 4-bit language model (bitsandbytes' CPU path).

    The language model is 64 wide: bitsandbytes' CPU kernels quantise in blocks of 64 inputs.
    """
    pytest.importorskip("bitsandbytes")
    from transformers import BitsAndBytesConfig, LlavaForConditionalGeneration

    from rsgpt4v.finetune.tiny import save_tiny_model

    base = save_tiny_model(tmp_path / "tiny", "llava", hidden_size=64)

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=torch.float32,
        llm_int8_skip_modules=["model.vision_tower", "model.multi_modal_projector", "lm_head"],
    )
    model = LlavaForConditionalGeneration.from_pretrained(base, quantization_config=quantization)
    apply_moe_lora(model, MoELoraConfig(routing="token"))
    layers = moe_lora_layers(model)
    assert len(layers) == 14
    assert all(type(layer.base).__name__ == "Linear4bit" for layer in layers.values())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = make_batch(model)
    losses = []
    for _ in range(4):
        output = model(**batch)
        (output.loss + 0.01 * moe_aux_loss(model)).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.loss.item())
    assert losses[-1] < losses[0], losses
