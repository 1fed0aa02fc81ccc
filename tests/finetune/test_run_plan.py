"""The batch plan (global batch over the processes) and the speed settings reach the run.

Liger patches the family's modelling module for the whole process, so its check runs the real
model construction in a subprocess; everything else runs here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from rsgpt4v.errors import InputError, RsgptError  # noqa: E402
from rsgpt4v.finetune import plan  # noqa: E402
from rsgpt4v.finetune.collate import ChatEncoder, PadCollator  # noqa: E402
from rsgpt4v.finetune.config import TrainSettings, load_config  # noqa: E402
from rsgpt4v.finetune.data import SampleDataset, stage_samples  # noqa: E402
from rsgpt4v.finetune.methods import add_adapters, load_base_model  # noqa: E402
from rsgpt4v.finetune.train import FinetuneTrainer, _training_arguments, run_finetune  # noqa: E402


def _config(model, demo, *extra):
    return load_config(
        None,
        [
            f"model={model}",
            f"data={demo / 'instructions.jsonl'}",
            f"data.0.image_root={demo / 'sample'}",
            "data.0.tasks=[counting]",
            "train.report_to=[]",
            "train.num_workers=0",
            "train.eval_fraction=0",
            *extra,
        ],
    )


def test_global_batch_is_split_over_the_processes():
    settings = TrainSettings(global_batch_size=128, batch_size=4)
    assert plan.plan_batches(settings, 1).accumulation == 32
    eight = plan.plan_batches(settings, 8)
    assert (eight.accumulation, eight.global_batch) == (4, 128)
    assert "128 samples = 4 per device x 4 accumulation x 8 process(es)" in eight.describe()
    with pytest.raises(RsgptError, match=r"128 is not divisible by train\.batch_size 4 x 3"):
        plan.plan_batches(settings, 3)
    with pytest.raises(RsgptError, match="not divisible"):
        plan.plan_batches(TrainSettings(global_batch_size=4, batch_size=4), 2)
    # Without a global batch: per-process accumulation as stated (default none).
    assert plan.plan_batches(TrainSettings(grad_accumulation=3), 2).global_batch == 24
    # Under a token budget the accumulation comes from the mean samples per budget batch.
    budget = TrainSettings(global_batch_size=128, max_tokens_per_batch=4096)
    tokens = plan.plan_batches(budget, 2, mean_budget_batch=5.3)
    assert tokens.accumulation == 12 and "~127 samples" in tokens.describe()


def test_global_batch_and_accumulation_are_alternatives(llava_dir, demo):
    with pytest.raises(InputError, match="give the global batch"):
        _config(llava_dir, demo, "train.global_batch_size=8", "train.grad_accumulation=2")


def test_dora_defaults_to_no_dropout(llava_dir, demo):
    assert _config(llava_dir, demo, "method=dora").lora.dropout == 0.0
    assert _config(llava_dir, demo).lora.dropout == 0.05
    assert _config(llava_dir, demo, "method=dora", "lora.dropout=0.1").lora.dropout == 0.1


def test_optimizer_clipping_and_compile_reach_the_trainer(llava_dir, demo, tmp_path):
    config = _config(
        llava_dir,
        demo,
        "train.optim=adamw_torch_fused",
        "train.max_grad_norm=0.5",
        "train.global_batch_size=4",
        "train.batch_size=2",
    )
    stage = config.curriculum()[0]
    train, _ = stage_samples(stage, config.boxes, 0, 0)
    encoder = ChatEncoder(llava_dir, "llava")
    dataset = SampleDataset(train[:4], encoder, config.boxes)
    args = _training_arguments(config, stage, tmp_path, False)
    assert (args.optim, args.max_grad_norm, args.torch_compile) == ("adamw_torch_fused", 0.5, False)
    assert args.gradient_accumulation_steps == 2  # global 4 = 2 per device x 2 x 1 process
    assert args.tf32 is None  # auto leaves torch alone without a CUDA GPU
    trainer = FinetuneTrainer(
        model=add_adapters(load_base_model(config), config),
        args=args,
        train_dataset=dataset,
        data_collator=PadCollator(encoder.pad_token_id),
        finetune=config,
        lengths=dataset.lengths,
    )
    optimizer = trainer.create_optimizer()
    assert type(optimizer).__name__ == "AdamW" and optimizer.defaults["fused"] is True
    assert _training_arguments(_config(llava_dir, demo), stage, tmp_path, False).optim == (
        "adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch"
    )


def test_auto_speed_settings_follow_the_hardware(llava_dir, demo, monkeypatch):
    config = _config(llava_dir, demo)
    monkeypatch.setattr(plan, "cuda_training", lambda config: True)
    monkeypatch.setattr("transformers.utils.is_torch_tf32_available", lambda: True)
    assert plan.resolve_tf32(config) is True
    assert plan.resolve_optim(config) == "adamw_torch_fused"
    assert plan.resolve_liger(config) is plan.liger_available()
    assert plan.resolve_liger(_config(llava_dir, demo, "train.liger=false")) is False
    monkeypatch.setattr(plan, "cuda_training", lambda config: False)
    assert plan.resolve_tf32(config) is None and plan.resolve_optim(config) == "adamw_torch"
    assert plan.resolve_liger(config) is False
    assert plan.resolve_tf32(_config(llava_dir, demo, "train.tf32=false")) is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals without a GPU")
def test_kernels_that_cannot_run_here_are_refused_before_loading(llava_dir, demo, tmp_path):
    for setting, message in (
        ("train.liger=true", "Triton kernels run on CUDA"),
        ("train.tf32=true", "Ampere"),
    ):
        config = _config(llava_dir, demo, setting, f"output_dir={tmp_path}")
        with pytest.raises(RsgptError, match=message):
            run_finetune(config)
    assert not (tmp_path / "finetune.yaml").exists()  # refused before anything was written


LIGER_PROBE = """
import json, sys
from rsgpt4v.finetune.config import load_config
from rsgpt4v.finetune.methods import add_adapters, load_base_model
seen = {}
for liger in ("false", "true"):  # Liger's patches last for the process: plain model first
    config = load_config(None, ["model=" + sys.argv[1], "data=x.jsonl", "train.liger=" + liger])
    model = add_adapters(load_base_model(config), config)
    # Liger patches instances: the forward methods change, the class names stay.
    forwards = {getattr(m.forward, "__func__", m.forward) for m in model.modules()}
    top = model.base_model.model.forward.__func__
    seen[liger] = {"kinds": sorted(f.__qualname__ for f in forwards), "forward": top.__module__}
print(json.dumps(seen))
"""


@pytest.mark.skipif(not plan.liger_available(), reason="liger-kernel is not installed")
def test_liger_modules_replace_the_language_model_s_when_asked(llava_dir):
    result = subprocess.run(
        [sys.executable, "-c", LIGER_PROBE, str(llava_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    asked, plain = seen["true"], seen["false"]
    assert {"LigerRMSNorm.forward", "LigerSwiGLUMLP.forward"} <= set(asked["kinds"])
    assert "LlamaRMSNorm.forward" not in asked["kinds"]
    assert asked["forward"].startswith("liger_kernel.")  # fused linear cross-entropy
    assert "LlamaRMSNorm.forward" in plain["kinds"]
    assert not any(kind.startswith("Liger") for kind in plain["kinds"])
    assert plain["forward"].startswith("transformers.")
