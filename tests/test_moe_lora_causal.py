"""MoE-LoRA that is causal, memory-safe, sparse and evaluable (tiny LLaVA, Qwen2-VL, Llama)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.moe_lora import (
    MoELoraConfig,
    MoELoraLinear,
    RoutingContext,
    apply_moe_lora,
    moe_aux_loss,
    moe_lora_layers,
    set_aux_loss_scale,
)

PROMPT, LENGTH = 10, 18


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rsgpt4v.finetune.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {family: save_tiny_model(root / family, family) for family in ("llava", "qwen2vl")}


def _model(folder: Path, routing: str):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(folder, attn_implementation="sdpa")
    apply_moe_lora(model, MoELoraConfig(routing=routing, num_experts=4, top_k=2))
    for layer in moe_lora_layers(model).values():  # experts start at zero: make them matter
        torch.nn.init.normal_(layer.lora_B, std=0.5)
    return model.eval()


def _batch(vocab: int, answer_seed: int) -> dict[str, torch.Tensor]:
    """One text prompt of PROMPT tokens and an answer that only ``answer_seed`` changes."""
    prompt = torch.randint(10, vocab, (2, PROMPT), generator=torch.Generator().manual_seed(0))
    answer = torch.randint(
        10, vocab, (2, LENGTH - PROMPT), generator=torch.Generator().manual_seed(answer_seed)
    )
    ids = torch.cat([prompt, answer], dim=1)
    labels = ids.clone()
    labels[:, :PROMPT] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("family", ["llava", "qwen2vl"])
@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_the_answer_never_moves_the_prompt(tiny, family: str, routing: str) -> None:
    """Changing only answer tokens leaves every prompt position's logits as they were, and a
    prompt-only prefill (inference) computes what the training pass computed there."""
    model = _model(tiny[family], routing)
    vocab = model.config.text_config.vocab_size
    with torch.no_grad():
        first = model(**_batch(vocab, 1)).logits[:, :PROMPT]
        second = model(**_batch(vocab, 2)).logits[:, :PROMPT]
        prompt = _batch(vocab, 1)
        prefill = model(
            input_ids=prompt["input_ids"][:, :PROMPT],
            attention_mask=prompt["attention_mask"][:, :PROMPT],
        ).logits
    assert (first - second).abs().max().item() <= 1e-6
    assert (first - prefill).abs().max().item() <= 1e-5


def _llama(layers: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    apply_moe_lora(model, MoELoraConfig(within=None, routing="sequence"))
    return model.train()


def _step_peak_mib(model: torch.nn.Module) -> float:
    """Peak CPU memory of one forward + backward, from the profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile

    ids = torch.randint(0, 128, (2, 768), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :384] = -100
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(input_ids=ids, labels=labels).loss.backward()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start
    )
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak / 2**20


def test_activation_checkpointing_lowers_the_peak_of_a_moe_step() -> None:
    plain = _step_peak_mib(_llama(6))
    checkpointed = _llama(6)
    checkpointed.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    assert _step_peak_mib(checkpointed) < 0.5 * plain
    assert all(  # nothing a forward built is kept by a layer after the step
        layer.last_balance is not None and layer.last_balance.grad_fn is None
        for layer in moe_lora_layers(checkpointed).values()
    )


def _prompted(seed: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(seed))
    labels = ids.clone()
    labels[:, :16] = -100
    return {"input_ids": ids, "labels": labels}


def _router_grads(model: torch.nn.Module, accumulation: int) -> list[torch.Tensor]:
    """The routers' gradients of the balance loss alone (the LM loss multiplied by zero)."""
    model.zero_grad()
    set_aux_loss_scale(model, accumulation)
    (model(**_prompted(0)).loss * 0).backward()
    return [layer.router.weight.grad.clone() for layer in moe_lora_layers(model).values()]


@pytest.mark.parametrize("layers", [2, 8])
def test_the_balance_loss_is_a_mean_over_layers_divided_like_the_lm_loss(layers: int) -> None:
    model = _llama(layers)
    coef = model.moe_lora_config.load_balance_coef
    model(**_prompted(1))
    assert coef * 0.95 <= coef * moe_aux_loss(model).item() <= coef * 1.5  # ~0.01, any depth
    once, accumulated = _router_grads(model, 1), _router_grads(model, 4)
    assert any(g.abs().max() > 0 for g in once)
    for single, quarter in zip(once, accumulated, strict=True):
        torch.testing.assert_close(quarter, single / 4)


def test_only_the_chosen_experts_run() -> None:
    """Top-2 of 8 experts: a quarter of the expert FLOPs, the same output as all 8 gated;
    ``dispatch: auto`` takes it where the experts are large enough for it to be faster."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    base = torch.nn.Linear(256, 256)
    cfg = MoELoraConfig(num_experts=8, top_k=2, rank=16, dispatch="sparse")
    layer = MoELoraLinear(base, cfg, RoutingContext())
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 64, 256)
    with torch.no_grad():
        gates, _ = layer.route(x)
        with FlopCounterMode(display=False) as sparse:
            update = layer.sparse_experts(x, gates)
        with FlopCounterMode(display=False) as dense:
            everything = layer.dense_experts(x, gates)
    torch.testing.assert_close(update, everything, rtol=1e-4, atol=1e-4)
    assert sparse.get_total_flops() <= 0.3 * dense.get_total_flops()
    assert layer.sparse  # (8 - 2) experts x rank 16 < 256: auto would be dense; asked sparse
    small = MoELoraLinear(base, MoELoraConfig(num_experts=8, rank=32), RoutingContext())
    large = MoELoraLinear(base, MoELoraConfig(num_experts=8, rank=64), RoutingContext())
    assert not small.sparse and large.sparse


def test_a_moe_lora_run_is_predicted_and_evaluated(tiny, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rsgpt4v.cli import app
    from rsgpt4v.finetune.config import FinetuneConfig
    from rsgpt4v.finetune.train import run_finetune

    demo = tmp_path / "demo"
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "-o", str(demo)])
    assert result.exit_code == 0, result.output
    config = FinetuneConfig.model_validate(
        {
            "model": str(tiny["llava"]),
            "method": "moe_lora",
            "moe": {"routing": "sequence", "num_experts": 4, "top_k": 2},
            "data": [
                {"path": str(demo / "instructions.jsonl"), "image_root": str(demo / "sample")}
            ],
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "train": {"batch_size": 2, "eval_fraction": 0.05, "report_to": [], "num_workers": 0,
                      "logging_steps": 1},
        }
    )  # fmt: skip
    run = run_finetune(config)
    assert any("moe_aux_loss" in entry for entry in run.history["main"])
    predictions = tmp_path / "p.jsonl"
    result = runner.invoke(
        app,
        ["predict", str(tmp_path / "run"), "--image-root", str(demo / "sample"),
         "--max-new-tokens", "4", "-o", str(predictions)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert lines and all(isinstance(line["prediction"], str) for line in lines)
    result = runner.invoke(app, ["evaluate", str(predictions), "--no-meteor", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_moe_lora_on_a_4bit_base_trains_where_bitsandbytes_runs(tiny, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from rsgpt4v.finetune.config import FinetuneConfig
    from rsgpt4v.finetune.methods import add_adapters, load_base_model
    from rsgpt4v.finetune.tiny import save_tiny_model

    wide = save_tiny_model(tmp_path / "wide", "llava", hidden_size=64)
    settings = {
        "method": "moe_lora",
        "quant": {"bits": 4},
        "moe": {"routing": "token"},
        "data": ["x.jsonl"],
        "train": {"use_cpu": True, "bf16": False},
    }
    config = FinetuneConfig.model_validate({"model": str(wide), **settings})
    model = add_adapters(load_base_model(config), config)
    layers = moe_lora_layers(model)
    assert layers and all(type(layer.base).__name__ == "Linear4bit" for layer in layers.values())
    ids = torch.randint(10, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(4):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    narrow = FinetuneConfig.model_validate({"model": str(tiny["llava"]), **settings})
    with pytest.raises(RsgptError, match="quantise blocks of 64 inputs"):
        load_base_model(narrow)
