"""Benchmark a LoRA step of a LLaVA-1.5-7B-shaped model: the plain recipe against ours.

    python bench/train.py                     # needs a CUDA GPU; prints why and exits 0 without
    python bench/train.py --tiny --steps 2    # the same code on a tiny model, on CPU, in seconds

The model is built from configs with random weights (nothing downloaded): Llama-2-7B text model
(hidden 4096, 32 layers, MLP 11008, 32 heads, vocab 32064), CLIP ViT-L/14 at 336 px, 576 image
tokens, bf16. LoRA r=128, alpha=256, dropout 0.05 on every language-model linear layer (the
LLaVA-1.5 ``finetune_lora.sh`` settings) and the projector trained fully, in every row. Samples
are shaped like our exports: one image (576 tokens) plus 50-700 text tokens, most of them short
(log-normal), with the first third of the text masked as the prompt.

Rows, measured in the same process on the same model:

- ``plain``: what HF ``Trainer`` does by default: a fixed batch size of randomly ordered samples
  padded to the longest, the loss computed by the model over the full logits, autocast bf16,
  fused AdamW, sdpa attention, no activation checkpointing, no packing;
- ``ours``: batches filled to a padded-token budget with samples of similar length
  (:class:`rsgpt4v.finetune.batching.TokenBudgetBatchSampler`) or packed rows
  (``--layout packed``: :func:`rsgpt4v.finetune.batching.pack_examples`, best with
  ``--attn flash_attention_2``), activation checkpointing (non-reentrant, every
  ``--checkpoint-every`` layers), logits computed only where a label is supervised, the same
  optimizer, optionally ``torch.compile`` on the decoder layers. One row per ``--max-tokens``.

Reported per row: real (non-padding) tokens per second, MFU and peak GPU memory. MFU counts
4 N FLOPs per real token (N = all parameters, frozen ones included: forward 2N, backward through
the activations 2N; frozen weights get no weight gradient), over the GPU's dense bf16 peak
(H100 / H200 989 TFLOP/s, A100 312 TFLOP/s). Recomputation under checkpointing is not counted,
so checkpointing lowers MFU as reported here. The closing line is ours / plain tokens/s.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IGNORE_INDEX = -100
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
LANGUAGE_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class Shape:
    """Model and sample sizes of one benchmark scale."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    vocab: int
    vision_hidden: int
    vision_layers: int
    vision_intermediate: int
    vision_heads: int
    image_size: int
    patch: int
    text_min: int
    text_max: int
    lora_rank: int

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2


LLAVA_7B = Shape(4096, 32, 11008, 32, 32064, 1024, 24, 4096, 16, 336, 14, 50, 700, 128)
TINY = Shape(64, 2, 128, 4, 512, 32, 2, 64, 4, 16, 4, 5, 70, 8)


@dataclass
class Row:
    name: str
    layout: str
    batching: str
    checkpointing: str
    steps: int = 0
    tokens_per_s: float = 0.0
    mfu: float | None = None
    peak_gib: float | None = None
    padding: float = 0.0
    error: str | None = None


def build_model(shape: Shape, device, dtype, attn: str):
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    text = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=4096,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=shape.vision_intermediate,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        image_size=shape.image_size,
        patch_size=shape.patch,
        projection_dim=768,
    )
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=shape.vocab - 64,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=shape.image_tokens,
    )
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=attn
        )
    model.config.use_cache = False
    return model.train()


def make_samples(shape: Shape, count: int, seed: int, image_token_id: int) -> list[dict]:
    """Token ids shaped like our exports: BOS, the image block, a prompt, then the answer."""
    rng = random.Random(seed)
    scale = shape.text_max / 700
    samples = []
    for _ in range(count):
        text = int(scale * rng.lognormvariate(math.log(150), 0.8))
        text = min(shape.text_max, max(shape.text_min, text))
        prompt = text // 3
        words = [rng.randrange(3, image_token_id) for _ in range(text)]
        input_ids = [1] + [image_token_id] * shape.image_tokens + words
        labels = [IGNORE_INDEX] * (1 + shape.image_tokens + prompt) + words[prompt:]
        samples.append({"input_ids": input_ids, "labels": labels})
    return samples


def plain_batches(count: int, batch_size: int, seed: int) -> list[list[int]]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def padded_batch(samples: list[dict], indexes: list[int], device) -> dict:
    """Right-padded rows with their attention mask (what HF's collators produce)."""
    import torch

    width = max(len(samples[i]["input_ids"]) for i in indexes)
    input_ids = torch.zeros(len(indexes), width, dtype=torch.long)
    labels = torch.full((len(indexes), width), IGNORE_INDEX)
    mask = torch.zeros(len(indexes), width, dtype=torch.long)
    for row, i in enumerate(indexes):
        n = len(samples[i]["input_ids"])
        input_ids[row, :n] = torch.tensor(samples[i]["input_ids"])
        labels[row, :n] = torch.tensor(samples[i]["labels"])
        mask[row, :n] = 1
    return {
        "input_ids": input_ids.to(device),
        "labels": labels.to(device),
        "attention_mask": mask.to(device),
        "images": len(indexes),
    }


def packed_batch(row: dict, device) -> dict:
    """One packed row: no attention mask, position ids restarting per sample."""
    import torch

    return {
        "input_ids": torch.tensor([row["input_ids"]], device=device),
        "labels": torch.tensor([row["labels"]], device=device),
        "position_ids": torch.tensor([row["position_ids"]], device=device),
        "images": len(row["example_ids"]),
    }


def add_lora(model, shape: Shape, dropout: float):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=shape.lora_rank,
        lora_alpha=2 * shape.lora_rank,
        lora_dropout=dropout,
        target_modules=LANGUAGE_LINEARS,
    )
    peft_model = get_peft_model(model, config)
    for parameter in peft_model.base_model.model.model.multi_modal_projector.parameters():
        parameter.requires_grad_(True)
    return peft_model


def supervised_loss(model, batch: dict):
    """Cross-entropy computed only at positions whose next token is supervised.

    The image block and the prompt precede every answer, so most positions need no logits; a
    1-D ``logits_to_keep`` (positions kept for every row) skips their slice of the LM head.
    """
    import torch

    labels = batch["labels"]
    keep = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    pixels = batch["pixel_values"]
    logits = model(**inputs, pixel_values=pixels, logits_to_keep=keep, use_cache=False).logits
    targets = labels[:, keep + 1]
    return torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX
    )


@dataclass
class Env:
    device: object
    dtype: object
    cuda: bool
    shape: Shape
    peak_flops: float | None

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()


def run_row(row: Row, model, batches, steps: int, warmup: int, ours: bool, env: Env) -> Row:
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, fused=env.cuda)
    generator = torch.Generator(device=env.device).manual_seed(0)
    real_tokens = padded_tokens = 0
    elapsed = 0.0
    if env.cuda:
        torch.cuda.reset_peak_memory_stats()
    for step in range(warmup + steps):
        batch = dict(batches[step % len(batches)])
        batch["pixel_values"] = torch.randn(
            batch.pop("images"),
            3,
            env.shape.image_size,
            env.shape.image_size,
            generator=generator,
            device=env.device,
            dtype=env.dtype,
        )
        env.sync()
        start = time.perf_counter()
        with torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=env.cuda):
            loss = supervised_loss(model, batch) if ours else model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        env.sync()
        if step >= warmup:
            elapsed += time.perf_counter() - start
            mask = batch.get("attention_mask")
            real_tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            padded_tokens += batch["input_ids"].numel()
    row.steps = steps
    row.tokens_per_s = real_tokens / elapsed
    row.padding = 1.0 - real_tokens / padded_tokens
    parameters = sum(p.numel() for p in model.parameters())
    if env.peak_flops:
        row.mfu = 4 * parameters * row.tokens_per_s / env.peak_flops
    if env.cuda:
        row.peak_gib = torch.cuda.max_memory_allocated() / 2**30
    del optimizer
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (tests, smoke)")
    parser.add_argument("--steps", type=int, default=10, help="measured steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps per row first")
    parser.add_argument("--samples", type=int, default=1024, help="synthetic samples")
    parser.add_argument("--plain-batch-size", type=int, default=4, help="plain recipe batch")
    parser.add_argument(
        "--max-tokens", type=int, nargs="+", help="padded-token budget(s) of ours (one row each)"
    )
    parser.add_argument("--layout", choices=("budget", "packed"), default="budget")
    parser.add_argument("--checkpoint-every", type=int, default=1, help="0: no checkpointing")
    parser.add_argument("--attn", default="sdpa", help="attention of ours (plain: sdpa)")
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--compile", action="store_true", help="torch.compile decoder layers")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def batching_module():
    """rsgpt4v.finetune.batching, also from a bare checkout (a GPU box without the package)."""
    try:
        from rsgpt4v.finetune import batching
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from finetune import batching
    return batching


def ours_batches(samples: list[dict], args, budget: int, device) -> tuple[list[dict], str]:
    batching = batching_module()
    if args.layout == "packed":
        rows = batching.pack_examples(samples, budget)
        random.Random(args.seed).shuffle(rows)
        return [packed_batch(row, device) for row in rows], f"packed {budget}"
    lengths = [len(s["input_ids"]) for s in samples]
    sampler = batching.TokenBudgetBatchSampler(lengths, budget, seed=args.seed)
    return [padded_batch(samples, b, device) for b in sampler], f"<= {budget} tokens"


def set_checkpointing(model, every: int) -> None:
    """Non-reentrant activation checkpointing of every ``every``-th decoder layer (0: off)."""
    modern = hasattr(model, "activation_checkpointing_enable")  # transformers >= 5.2x
    if every <= 0:
        (
            model.activation_checkpointing_disable
            if modern
            else model.gradient_checkpointing_disable
        )()
    elif modern:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}, every_n_layers=every
        )
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench/train.py: torch is not installed (pip install 'rsgpt4v[train]'); skipping")
        return 0
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("bench/train.py: no CUDA GPU here (torch.cuda.is_available() is False); skipping.")
        print("Run with --tiny to exercise the same code path on a tiny model on CPU.")
        return 0
    shape = TINY if args.tiny else LLAVA_7B
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    gpu = torch.cuda.get_device_name() if cuda else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in gpu), None) if cuda else None
    env = Env(device, dtype, cuda, shape, peak)
    # The second GPU budget is the small-memory setting (a LoRA step of the 7B within 24 GB).
    budgets = args.max_tokens or ([512] if args.tiny else [16384, 4096])
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # as LLaVA's scripts (--tf32 True)
    torch.manual_seed(args.seed)

    model = build_model(shape, device, dtype, "sdpa")
    samples = make_samples(shape, args.samples, args.seed, model.config.image_token_id)
    print(
        f"device: {gpu} (peak bf16 {peak / 1e12:.0f} TFLOP/s)"
        if peak
        else f"device: {gpu} (no bf16 peak known: MFU not reported)"
    )
    total = sum(p.numel() for p in model.parameters())
    text = [len(s["input_ids"]) - 1 - shape.image_tokens for s in samples]
    print(
        f"model: LLaVA-1.5-7B shape{' (tiny)' if args.tiny else ''}, {total:,} params, "
        f"{dtype}; samples: {len(samples)} x ({shape.image_tokens} image + "
        f"{min(text)}-{max(text)} text tokens, median {sorted(text)[len(text) // 2]})"
    )

    rows: list[Row] = []
    plan = [("plain", None)] + [("ours", b) for b in budgets]
    for name, budget in plan:
        ours = budget is not None
        peft_model = add_lora(model, shape, args.lora_dropout)
        hf_model = peft_model.base_model.model
        if not rows:
            trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
            print(
                f"trainable: {trainable:,} params (LoRA r={shape.lora_rank}, alpha="
                f"{2 * shape.lora_rank}, dropout {args.lora_dropout} on the language model's "
                "linear layers + the projector)"
            )
        if ours:
            hf_model.set_attn_implementation(args.attn)
            batches, batching = ours_batches(samples, args, budget, device)
            set_checkpointing(hf_model, args.checkpoint_every)
            if args.compile:
                for layer in hf_model.model.language_model.layers:
                    layer.compile(dynamic=True)
            row = Row(name, args.layout, batching, f"every {args.checkpoint_every}")
        else:
            hf_model.set_attn_implementation("sdpa")
            indexes = plain_batches(len(samples), args.plain_batch_size, args.seed)
            batches = [padded_batch(samples, b, device) for b in indexes]
            row = Row(name, "padded", f"{args.plain_batch_size} samples", "off")
        try:
            rows.append(run_row(row, peft_model, batches, args.steps, args.warmup, ours, env))
        except torch.OutOfMemoryError as error:
            row.error = f"OOM ({str(error).splitlines()[0][:60]})"
            rows.append(row)
        set_checkpointing(hf_model, 0)
        model = peft_model.unload()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        del peft_model, hf_model, batches
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    print(
        f"{'recipe':<7} {'layout':<7} {'batching':<18} {'ckpt':<8} {'steps':>5} "
        f"{'tokens/s':>10} {'MFU':>6} {'peak GiB':>9} {'padding':>8}"
    )
    for row in rows:
        if row.error:
            print(
                f"{row.name:<7} {row.layout:<7} {row.batching:<18} {row.checkpointing:<8} ", end=""
            )
            print(row.error)
            continue
        mfu = f"{row.mfu:.3f}" if row.mfu is not None else "n/a"
        peak_gib = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "n/a"
        print(
            f"{row.name:<7} {row.layout:<7} {row.batching:<18} {row.checkpointing:<8} "
            f"{row.steps:>5} {row.tokens_per_s:>10.1f} {mfu:>6} {peak_gib:>9} "
            f"{row.padding:>7.1%}"
        )
    plain = rows[0]
    for row in rows[1:]:
        label = f"ours ({row.batching}) / plain tokens/s:"
        if plain.error or row.error:
            print(f"{label} n/a (a row failed)")
        else:
            print(f"{label} {row.tokens_per_s / plain.tokens_per_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
