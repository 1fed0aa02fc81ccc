"""bench/train.py: the tiny run trains both rows, ours through ``rsgpt4v finetune``'s code path."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_plain_and_ours_rows(capsys, tmp_path):
    """``bench/train.py --tiny --steps 2``, run in this process (torch is already imported)."""
    argv = ["--tiny", "--steps", "2", "--warmup", "1", "--samples", "32", "--work", str(tmp_path)]
    assert load_bench().main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    plain = [line.split() for line in lines if line.startswith("plain ")]
    ours = [line.split() for line in lines if line.startswith("ours ") and "/ plain" not in line]
    assert len(plain) == 1 and len(ours) == 1, lines
    for row in plain + ours:
        assert row[-4] == "2"  # measured steps
        assert float(row[-3]) > 0  # tokens/s
    ratios = [line for line in lines if "/ plain tokens/s:" in line]
    assert len(ratios) == 1 and ratios[0].endswith("x"), lines
    # The ours row is a finetune run folder: the config it trained with and its adapter.
    run = tmp_path / "ours-512"
    assert "max_tokens_per_batch: 512" in (run / "finetune.yaml").read_text()
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    export = json.loads((tmp_path / "data" / "export.json").read_text())
    assert len(export) == 32 and all(item["conversations"] for item in export)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU skip")
def test_without_gpu_skips_cleanly(capsys):
    assert load_bench().main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_export_lengths_vary_like_real_exports(tmp_path):
    bench = load_bench()
    from transformers import AutoTokenizer

    from rsgpt4v.finetune.tiny import save_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(save_tiny_model(tmp_path / "model", "llava"))
    path = bench.write_export(bench.LLAVA_7B, tmp_path / "data", 200, 0, tokenizer)
    lengths = [
        sum(len(tokenizer(turn["value"])["input_ids"]) for turn in item["conversations"])
        for item in json.loads(path.read_text())
    ]
    assert min(lengths) < 100 and max(lengths) > 500  # short-heavy, with a long tail
    assert sorted(lengths)[len(lengths) // 2] < 300
