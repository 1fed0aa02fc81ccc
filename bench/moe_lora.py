"""Benchmark: MoE-LoRA's sparse expert dispatch against computing every expert densely.

The baseline is the dense formulation (every expert's ``B_e A_e x`` for every token, then the
gates zero all but the top-k), which is what a mixture of LoRA experts costs without dispatch.
Both run forward + backward of one wrapped layer of a 7B-shaped width (4096 -> 4096) on the same
tokens; the script prints FLOPs (torch's FlopCounterMode) and wall time, and the ratios, at 4
and 8 experts with top-2, for each rank given. ``dispatch: auto`` picks from these figures.

    python bench/moe_lora.py [--tokens 2048] [--width 4096] [--ranks 32 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from rsgpt4v.finetune.moe_lora import MoELoraConfig, MoELoraLinear, RoutingContext


def measure(step, repeat: int) -> tuple[float, float]:
    """(FLOPs of one forward + backward, best wall seconds of ``repeat`` runs)."""
    with FlopCounterMode(display=False) as counter:
        step()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return counter.get_total_flops(), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--ranks", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"one MoE-LoRA layer {args.width} -> {args.width}, {args.tokens} tokens, forward + "
        "backward of the experts, top-2"
    )
    for rank, experts in ((rank, experts) for rank in args.ranks for experts in (4, 8)):
        cfg = MoELoraConfig(num_experts=experts, top_k=2, rank=rank)
        layer = MoELoraLinear(torch.nn.Linear(args.width, args.width), cfg, RoutingContext())
        torch.nn.init.normal_(layer.lora_B, std=0.01)
        x = torch.randn(1, args.tokens, args.width)
        gates = layer.route(x)[0].detach()

        def sparse(layer=layer, x=x, gates=gates) -> None:
            layer.sparse_experts(x, gates).sum().backward()

        def dense(layer=layer, x=x, gates=gates) -> None:
            layer.dense_experts(x, gates).sum().backward()

        sparse_flops, sparse_s = measure(sparse, args.repeat)
        dense_flops, dense_s = measure(dense, args.repeat)
        print(
            f"  rank {rank}, {experts} experts: "
            f"sparse {sparse_flops / 1e9:.1f} GFLOP {sparse_s * 1e3:.0f} ms; "
            f"dense {dense_flops / 1e9:.1f} GFLOP {dense_s * 1e3:.0f} ms; "
            f"sparse/dense FLOPs {sparse_flops / dense_flops:.2f}, time {sparse_s / dense_s:.2f}"
        )


if __name__ == "__main__":
    main()
