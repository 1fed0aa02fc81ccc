"""``rsgpt4v finetune`` on two processes (torchrun, gloo on the CPU), as on a multi-GPU machine.

The configured global batch is what the processes train together (accumulation derived from the
world size), only the main process writes the run's files and adapters, and a two-process run
resumed from a checkpoint ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from rsgpt4v.finetune.collate import ChatEncoder  # noqa: E402
from rsgpt4v.finetune.config import load_config  # noqa: E402
from rsgpt4v.finetune.data import SampleDataset, stage_samples  # noqa: E402

GLOBAL_BATCH = 8  # 2 per process x 2 accumulated x 2 processes
# counting (12) + multi_turn (4): 16 samples, two optimizer steps of 8.
SETTINGS = [
    "data.0.tasks=[counting,multi_turn]",
    "max_steps=-1",
    "epochs=1",
    "lora.dropout=0",
    f"train.global_batch_size={GLOBAL_BATCH}",
    "train.batch_size=2",
    "train.learning_rate=2e-2",
    "train.warmup=0",
    "train.eval_fraction=0",
    "train.save_steps=1",
    "train.logging_steps=1",
    "train.num_workers=0",
    "train.report_to=[]",
    "train.gradient_checkpointing=false",
]


def _settings(model: Path, demo: Path, out: Path) -> list[str]:
    return [
        f"model={model}",
        f"data={demo / 'instructions.jsonl'}",
        f"data.0.image_root={demo / 'sample'}",
        f"output_dir={out}",
        *SETTINGS,
    ]


def _torchrun(settings: list[str]) -> str:
    """``rsgpt4v finetune tiny-llava`` on two processes; their interleaved log."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "rsgpt4v.cli", "finetune", "tiny-llava"]  # a free port
    for pair in settings:
        command += ["--set", pair]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


@pytest.fixture(scope="module")
def straight(llava_dir, demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "straight"
    return out, _torchrun(_settings(llava_dir, demo, out))


def test_two_processes_train_the_global_batch_and_only_the_main_one_writes(
    straight, llava_dir, demo
):
    out, log = straight
    plans = re.findall(
        r"global batch (\d+) samples = (\d+) per device x (\d+) accumulation x "
        r"(\d+) process",
        log,
    )
    assert plans == [("8", "2", "2", "2")] * 2  # each process derived the same split
    config = load_config("tiny-llava", _settings(llava_dir, demo, out))
    train, _ = stage_samples(config.curriculum()[0], config.boxes, 0, config.seed)
    encoder = ChatEncoder(llava_dir, "llava")
    dataset = SampleDataset(train, encoder, config.boxes, max_length=config.train.max_length)
    assert len(dataset) == 16
    state = json.loads((out / "stages/00-main/checkpoint-2/trainer_state.json").read_text())
    assert state["global_step"] == len(dataset) // GLOBAL_BATCH
    assert state["train_batch_size"] == 2
    # The two optimizer steps of one epoch saw every sample exactly once between the processes.
    assert state["num_input_tokens_seen"] == sum(dataset.lengths)
    writes = re.findall(r"process (\d+) wrote the adapter to (\S+)", log)
    assert writes == [("0", str(out / "stages/00-main/final"))]
    assert log.count("held out 0 instruction(s)") == 1  # the run folder's files: main only
    assert sorted(p.name for p in (out / "stages/00-main").iterdir()) == [
        "checkpoint-1",
        "checkpoint-2",
        "final",
    ]
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {
        p.name for p in (out / "stages/00-main/checkpoint-1").iterdir()
    }
    adapter = load_file(str(out / "adapter/adapter_model.safetensors"))
    final = load_file(str(out / "stages/00-main/final/adapter_model.safetensors"))
    assert adapter.keys() == final.keys() and all(torch.equal(adapter[k], final[k]) for k in final)
    assert not (out / "adapter" / "DONE").exists()
    assert (out / "adapter" / "chat_template.jinja").is_file()


def test_resumed_two_process_run_equals_the_uninterrupted_one(straight, llava_dir, demo, tmp_path):
    out, _ = straight
    run = tmp_path / "resumed"
    shutil.copytree(out, run)
    # Interrupted after the checkpoint of step 1: no step-2 checkpoint, no final, no adapter.
    for left in ("stages/00-main/checkpoint-2", "stages/00-main/final", "adapter"):
        shutil.rmtree(run / left)
    log = _torchrun(_settings(llava_dir, demo, run))
    assert log.count(f"resumes from {run / 'stages/00-main/checkpoint-1'}") == 2
    a = load_file(str(out / "adapter/adapter_model.safetensors"))
    b = load_file(str(run / "adapter/adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    lora_b = [k for k in a if "lora_B" in k]
    assert lora_b and all(a[k].abs().sum() > 0 for k in lora_b)  # the adapters did train
