"""bench/train.py: the tiny run prints both rows; the efficient loss and packing change no math."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_plain_and_ours_rows(capsys):
    """``bench/train.py --tiny --steps 2``, run in this process (torch is already imported)."""
    assert load_bench().main(["--tiny", "--steps", "2", "--warmup", "1", "--samples", "48"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plain = [line.split() for line in lines if line.startswith("plain ")]
    ours = [line.split() for line in lines if line.startswith("ours ") and "/ plain" not in line]
    assert len(plain) == 1 and len(ours) == 1, lines
    for row in plain + ours:
        assert row[-5] == "2"  # measured steps
        assert float(row[-4]) > 0  # tokens/s
    ratios = [line for line in lines if "/ plain tokens/s:" in line]
    assert len(ratios) == 1 and ratios[0].endswith("x"), lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU skip")
def test_without_gpu_skips_cleanly(capsys):
    assert load_bench().main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_supervised_only_logits_and_packing_give_the_plain_loss():
    bench = load_bench()
    torch.manual_seed(0)
    model = bench.build_model(bench.TINY, torch.device("cpu"), torch.float32, "sdpa").eval()
    samples = bench.make_samples(bench.TINY, 5, seed=1, image_token_id=model.config.image_token_id)
    images = torch.rand(5, 3, 16, 16)
    padded = bench.padded_batch(samples, list(range(5)), "cpu")
    padded.pop("images")
    with torch.no_grad():
        plain = model(**padded, pixel_values=images, use_cache=False).loss
        ours = bench.supervised_loss(model, dict(padded, pixel_values=images))
        torch.testing.assert_close(ours, plain)

        from rsgpt4v.finetune.batching import pack_examples

        (row,) = pack_examples(samples, max_length=10_000)
        packed = bench.packed_batch(row, "cpu")
        packed.pop("images")
        packed_loss = bench.supervised_loss(
            model, dict(packed, pixel_values=images[row["example_ids"]])
        )
        torch.testing.assert_close(packed_loss, plain)
