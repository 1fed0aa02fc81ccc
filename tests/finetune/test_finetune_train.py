"""Fine-tuning runs on tiny random-weight models: what a user relies on after ``finetune``.

Loss falls, adapters change while base weights stay bit-identical, a resumed run equals an
uninterrupted one, a curriculum continues stage to stage, merged logits match, DoRA trains,
QLoRA is refused without CUDA, and the CLI runs export → finetune → merge.
"""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rsgpt4v.cli import app  # noqa: E402
from rsgpt4v.errors import RsgptError  # noqa: E402
from rsgpt4v.finetune.collate import ChatEncoder, PadCollator  # noqa: E402
from rsgpt4v.finetune.config import load_config  # noqa: E402
from rsgpt4v.finetune.data import SampleDataset, stage_samples  # noqa: E402
from rsgpt4v.finetune.merge import merge_adapter  # noqa: E402
from rsgpt4v.finetune.methods import add_adapters, load_adapters, load_base_model  # noqa: E402
from rsgpt4v.finetune.train import run_finetune  # noqa: E402

SHORT_TASKS = "[brief_caption,counting,presence,grounding]"
# Loss checks: one task's captions seen a few times each, so ten steps move the loss clearly.
LEARNABLE = ("data.0.tasks=[brief_caption]", "max_steps=10")


def _config(model, demo, out, *extra):
    return load_config(
        None,
        [
            f"model={model}",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            f"data.0.tasks={SHORT_TASKS}",
            f"output_dir={out}",
            "max_steps=4",
            "lora.dropout=0",
            "train.learning_rate=2e-2",
            "train.batch_size=2",
            "train.warmup=0",
            "train.report_to=[]",
            "train.num_workers=0",
            "train.save_steps=3",
            "train.eval_steps=3",
            "train.logging_steps=1",
            "train.eval_fraction=0",
            "train.gradient_checkpointing=false",
            *extra,
        ],
    )


def _fixed_batch(config, encoder):
    train, _ = stage_samples(config.curriculum()[0], config.boxes, 0, 0)
    dataset = SampleDataset(train[:4], encoder, config.boxes)
    return PadCollator(encoder.pad_token_id)([dataset[i] for i in range(4)])


@torch.no_grad()
def _loss(model, batch):
    model.eval()
    return model(**batch).loss.item()


def _state(model_dir):
    """The weights as the model names them (files keep the original checkpoint's names)."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()


def test_lora_trains_adapters_only_and_merge_keeps_the_projector(llava_dir, demo, tmp_path):
    config = _config(
        llava_dir,
        demo,
        tmp_path / "run",
        "lora.projector=full",
        "train.eval_fraction=0.05",
        "train.gradient_checkpointing=true",
        *LEARNABLE,
    )
    result = run_finetune(config)
    batch = _fixed_batch(config, result.encoder)
    trained = _loss(result.model, batch)
    with result.model.disable_adapter():
        untrained = _loss(result.model, batch)
    assert trained < untrained - 0.05  # loss fell on the same batch
    assert any("eval_loss" in entry for entry in result.history["main"])  # held-out split
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero
    assert any("multi_modal_projector" in k for k in adapter)  # fully trained projector saved
    base = _state(llava_dir)
    state = result.model.get_base_model().state_dict()
    checked = 0
    for name, tensor in state.items():
        plain = name.replace(".base_layer", "").replace(".original_module", "")
        if plain in base and "lora_" not in name and "modules_to_save" not in name:
            assert torch.equal(tensor, base[plain]), name
            checked += 1
    assert checked == len(base)
    assert (tmp_path / "run" / "finetune.yaml").is_file()

    merged = merge_adapter(tmp_path / "run", tmp_path / "merged")
    assert merged.max_abs_diff < 1e-4 and merged.reload_max_abs_diff < 1e-4
    assert not any("lora" in k for k in load_file(str(tmp_path / "merged" / "model.safetensors")))
    weights = _state(tmp_path / "merged")
    key = "model.multi_modal_projector.linear_1.weight"
    assert not torch.equal(weights[key], base[key])  # the trained projector survived the merge
    assert (tmp_path / "merged" / "chat_template.jinja").is_file()


def test_resumed_run_equals_uninterrupted_run(llava_dir, demo, tmp_path):
    straight = run_finetune(
        _config(llava_dir, demo, tmp_path / "a", "max_steps=2", "train.save_steps=1")
    )
    run = tmp_path / "b"
    run_finetune(_config(llava_dir, demo, run, "max_steps=2", "train.save_steps=1"))
    # Killed while saving step 2: its optimizer.pt is cut short; the run must resume from
    # step 1 (not fail with a traceback in torch.load), then equal the uninterrupted run.
    optimizer = run / "stages" / "00-main" / "checkpoint-2" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    shutil.rmtree(run / "stages" / "00-main" / "final")
    shutil.rmtree(run / "adapter")
    resumed = run_finetune(_config(llava_dir, demo, run, "max_steps=2", "train.save_steps=1"))
    assert resumed.resumed_from["main"].endswith("checkpoint-1")
    a = load_file(str(straight.adapter / "adapter_model.safetensors"))
    b = load_file(str(resumed.adapter / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0


def test_two_stage_curriculum_continues_and_skips_finished_stages(llava_dir, demo, tmp_path):
    data = f"{demo / 'instructions.jsonl'}"
    root = f"{demo / 'sample'}"
    stages = (
        f"stages=[{{name: captions, max_steps: 2, data: [{{path: {data}, image_root: {root}, "
        f"tasks: [brief_caption]}}]}}, {{name: reasoning, max_steps: 2, data: [{{path: {data}, "
        f"image_root: {root}, tasks: [counting, presence], weight: 0.5}}]}}]"
    )
    config = _config(llava_dir, demo, tmp_path / "run", stages)
    result = run_finetune(config)
    assert list(result.history) == ["captions", "reasoning"]
    first = load_file(str(tmp_path / "run/stages/00-captions/final/adapter_model.safetensors"))
    last = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert any(not torch.equal(first[k], last[k]) for k in first)
    again = run_finetune(config)  # both stages finished: nothing trains, weights reload
    assert again.history == {}
    reloaded = load_file(str(again.adapter / "adapter_model.safetensors"))
    assert all(torch.equal(reloaded[k], last[k]) for k in last)
    changed = _config(llava_dir, demo, tmp_path / "run", stages, "train.learning_rate=1e-3")
    with pytest.raises(RsgptError, match="other settings"):
        run_finetune(changed)
    changed.resume = False  # start over: both stages train again
    assert list(run_finetune(changed).history) == ["captions", "reasoning"]


def test_dora_trains_and_merges(llava_dir, demo, tmp_path):
    result = run_finetune(_config(llava_dir, demo, tmp_path / "run", "method=dora", "max_steps=3"))
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert any("lora_magnitude_vector" in k for k in adapter)
    merged = merge_adapter(tmp_path / "run", tmp_path / "merged")
    assert merged.max_abs_diff < 1e-4


def test_packed_training_runs(llava_dir, demo, tmp_path):
    # Qwen2-VL packing (3-D mRoPE positions per sample): tests/finetune/test_packing.py
    result = run_finetune(
        _config(llava_dir, demo, tmp_path / "run", "train.packing=true", "train.max_length=700")
    )
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


def test_another_family_needs_only_a_config(llava_dir, demo, tmp_path):
    from rsgpt4v.finetune.templates import LLAVA_TEMPLATE

    template = tmp_path / "template.jinja"
    template.write_text(LLAVA_TEMPLATE)
    result = run_finetune(
        _config(
            llava_dir,
            demo,
            tmp_path / "run",
            "family=other",
            "box_style=pixel",
            f"chat_template={template}",
            "components.language=model.language_model",
            "components.vision=model.vision_tower",
            "components.projector=model.multi_modal_projector",
            "max_steps=2",
        )
    )
    assert result.encoder.mode == "processor"
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


def test_qwen2vl_trains_without_a_processor(qwen_dir, demo, tmp_path):
    config = _config(
        qwen_dir, demo, tmp_path / "run", "family=qwen2vl", "lora.projector=full", *LEARNABLE
    )
    result = run_finetune(config)
    assert result.encoder.mode == "manual"
    batch = _fixed_batch(config, result.encoder)
    trained = _loss(result.model, batch)
    with result.model.disable_adapter():
        assert trained < _loss(result.model, batch) - 0.05
    merged = merge_adapter(tmp_path / "run", tmp_path / "merged")
    assert merged.max_abs_diff < 1e-4


def test_component_targets_and_qlora_refusal(llava_dir, demo, tmp_path):
    config = _config(llava_dir, demo, tmp_path, "lora.vision=true", "lora.projector=lora")
    model = add_adapters(load_base_model(config), config)
    names = [n for n, m in model.named_modules() if hasattr(m, "lora_A")]
    assert sum(".language_model." in n for n in names) == 14  # 2 layers x 7 linears
    assert sum(".vision_tower." in n for n in names) == 12  # 2 CLIP layers x 6 linears
    assert sum(".multi_modal_projector." in n for n in names) == 2
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: QLoRA is allowed")
    # bitsandbytes' CPU kernels run 4-bit layers 64 inputs wide; the tiny model is 32 wide
    with pytest.raises(RsgptError, match="quantise blocks of 64 inputs"):
        load_base_model(_config(llava_dir, demo, tmp_path, "method=qlora"))


def test_every_trainable_tensor_gets_a_gradient_with_checkpointing(llava_dir, demo, tmp_path):
    config = _config(llava_dir, demo, tmp_path, "lora.vision=true", "lora.projector=full")
    model = add_adapters(load_base_model(config), config)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    batch = _fixed_batch(config, ChatEncoder(llava_dir, "llava"))
    with torch.no_grad():  # B starts at zero, which would zero A's gradient
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.02)
    model(**batch).loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert any(".vision_tower." in n for n in trainable)
    starved = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert starved == []


def test_merge_refuses_quantised_base_and_moe_lora(llava_dir, demo, tmp_path):
    run_finetune(_config(llava_dir, demo, tmp_path / "run", "max_steps=1"))
    quantised = tmp_path / "q"
    shutil.copytree(llava_dir, quantised)
    config = json.loads((quantised / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quantised / "config.json").write_text(json.dumps(config))
    with pytest.raises(RsgptError, match="quantised"):
        merge_adapter(tmp_path / "run", tmp_path / "m", base=quantised)
    settings = (tmp_path / "run" / "finetune.yaml").read_text()
    (tmp_path / "run" / "finetune.yaml").write_text(
        settings.replace("method: lora", "method: moe_lora")
    )
    with pytest.raises(RsgptError, match="MoE-LoRA adapter cannot be merged"):
        merge_adapter(tmp_path / "run", tmp_path / "m")


def test_cli_finetune_then_merge(llava_dir, demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    finetune = runner.invoke(
        app,
        [
            "finetune",
            "tiny-llava",
            "--set",
            f"model={llava_dir}",
            "--set",
            f"data.0.path={demo / 'instructions.jsonl'}",
            "--set",
            f"data.0.image_root={demo / 'sample'}",
            "--set",
            "max_steps=2",
            "--set",
            "train.report_to=[]",
        ],
    )
    assert finetune.exit_code == 0, finetune.output
    assert "adapter: runs/tiny-llava/adapter" in finetune.output
    merged = runner.invoke(app, ["merge", "runs/tiny-llava", "merged"])
    assert merged.exit_code == 0, merged.output
    assert "max |logit diff|" in merged.output
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    bad = runner.invoke(app, ["finetune", "tiny-llava", "--set", "method=qlora"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_moe_lora_trains_in_both_routings_and_reloads(llava_dir, demo, tmp_path, routing):
    moe = pytest.importorskip("rsgpt4v.finetune.moe_lora")
    from transformers import AutoModelForImageTextToText

    config = _config(
        llava_dir,
        demo,
        tmp_path / "run",
        "method=moe_lora",
        f"moe.routing={routing}",
        "moe.num_experts=3",
        "moe.top_k=2",
        "max_steps=3",
        "lora.projector=full",
    )
    result = run_finetune(config)
    saved = load_file(str(result.adapter / moe.WEIGHTS_NAME))
    assert any(k.endswith("router.weight") for k in saved)
    assert all(v.abs().sum() > 0 for k, v in saved.items() if k.endswith("lora_B"))
    assert json.loads((result.adapter / moe.CONFIG_NAME).read_text())["routing"] == routing
    assert (result.adapter / "projector.safetensors").is_file()
    batch = _fixed_batch(config, result.encoder)
    result.model.eval()
    with torch.no_grad():
        trained = result.model(**batch).logits
        fresh = AutoModelForImageTextToText.from_pretrained(llava_dir)
        load_adapters(fresh, config, result.adapter)
        fresh.eval()
        assert torch.allclose(fresh(**batch).logits, trained, atol=1e-5)
