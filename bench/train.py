"""Benchmark LoRA training of a LLaVA-1.5-7B shape: ``rsgpt4v finetune`` against the plain recipe.

    python bench/train.py                     # needs a CUDA GPU; prints why and exits 0 without
    python bench/train.py --tiny --steps 2    # the same code on a tiny model, on CPU, in seconds

Both rows train the same model folder on the same data, in one process:

- ``plain``: what a user would otherwise run: transformers' ``Trainer`` on a peft LoRA model,
  a fixed batch of randomly ordered samples padded to the longest, the loss over the full
  logits, bf16, the Trainer's default optimizer, sdpa attention, no activation checkpointing;
- ``ours``: :func:`rsgpt4v.finetune.train.run_finetune`, the function ``rsgpt4v finetune``
  calls, with a config object: token-budget batches (``train.max_tokens_per_batch``, one row per
  ``--max-tokens``), activation checkpointing, and the speed settings at their defaults (Liger
  kernels, tf32 and fused AdamW where a CUDA GPU is present). ``--set key=value`` changes the
  config of ``ours`` like ``rsgpt4v finetune --set`` (e.g. ``train.packing=true``).

The model folder holds random weights written from configs (nothing downloaded): Llama-2-7B
text model (hidden 4096, 32 layers, MLP 11008, 32 heads, vocab 32064), CLIP ViT-L/14 at 336 px
(576 image tokens), bf16, with the tiny model's tokenizer (finetune/tiny.py). LoRA r=128,
alpha=256, dropout 0.05 on every language-model linear layer and the projector trained fully
(LLaVA-1.5's ``finetune_lora.sh``), in both rows. The data is a llava-format export: one image
and a conversation of 50-700 text tokens (log-normal, most short), a third of it the prompt.

Reported per row: real (non-padding) tokens per second over the measured steps (after
``--warmup`` steps), MFU and peak GPU memory. MFU counts 4 N FLOPs per real token (N = all
parameters, frozen ones included: forward 2N, backward through the activations 2N), over the
GPU's dense bf16 peak (H100 / H200 989 TFLOP/s, A100 312 TFLOP/s); recomputation under
checkpointing is not counted. The closing lines are ours / plain tokens/s. Targets on an
H100 / H200: ours >= 2x plain, MFU >= 0.35, the 4,096-token row under 24 GB.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
LANGUAGE_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
WORDS = [
    *("the", "image", "shows", "an", "airplane", "parked", "next", "to", "a", "storage", "tank"),
    *("near", "harbor", "ships", "vehicle", "bridge", "dense", "residential", "area", "with"),
    *("roads", "trees", "buildings", "farmland", "forest", "river", "lake", "tennis", "court"),
    *("baseball", "diamond", "ground", "track", "field", "soccer", "large", "small", "pool"),
]


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
TINY = Shape(64, 2, 128, 4, 400, 32, 2, 64, 4, 16, 4, 5, 70, 8)


@dataclass
class Row:
    name: str
    batching: str
    checkpointing: str
    steps: int = 0
    tokens_per_s: float = 0.0
    mfu: float | None = None
    peak_gib: float | None = None
    error: str | None = None


def write_model(shape: Shape, folder: Path, cuda: bool) -> Path:
    """A LLaVA folder of ``shape`` with random weights and the tiny model's tokenizer."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from rsgpt4v.finetune.tiny import save_tiny_model

    marker = folder / "bench-shape.json"  # a folder written before for this shape is reused
    if marker.is_file() and json.loads(marker.read_text()) == shape.__dict__:
        return folder
    save_tiny_model(folder, "llava", hidden_size=shape.hidden)
    if shape != TINY:
        processor = LlavaProcessor.from_pretrained(folder)
        size = shape.image_size
        processor.image_processor.size = {"shortest_edge": size}
        processor.image_processor.crop_size = {"height": size, "width": size}
        processor.patch_size = shape.patch
        processor.save_pretrained(folder)
        tokenizer = processor.tokenizer
        text = LlamaConfig(
            vocab_size=shape.vocab,
            hidden_size=shape.hidden,
            intermediate_size=shape.intermediate,
            num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads,
            num_key_value_heads=shape.heads,
            max_position_embeddings=4096,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=False,
        )
        vision = CLIPVisionConfig(
            hidden_size=shape.vision_hidden,
            intermediate_size=shape.vision_intermediate,
            num_hidden_layers=shape.vision_layers,
            num_attention_heads=shape.vision_heads,
            image_size=size,
            patch_size=shape.patch,
            projection_dim=768,
        )
        config = LlavaConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            image_seq_length=shape.image_tokens,
        )
        for old in folder.glob("model*.safetensors*"):
            old.unlink()
        with torch.device("cuda" if cuda else "cpu"):
            model = LlavaForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(folder)
        del model
    marker.write_text(json.dumps(shape.__dict__))
    return folder


def write_export(shape: Shape, folder: Path, count: int, seed: int, tokenizer) -> Path:
    """A llava-format export: one image per sample, text lengths log-normal in tokens."""
    from PIL import Image

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        colour = tuple(rng.randrange(256) for _ in range(3))
        Image.new("RGB", (64, 48), colour).save(folder / f"tile_{i}.png")
    cost = {w: len(tokenizer(f" {w}", add_special_tokens=False)["input_ids"]) for w in WORDS}
    scale = shape.text_max / 700

    def words(tokens: int) -> str:
        out: list[str] = []
        while tokens > 0:
            word = rng.choice(WORDS)
            out.append(word)
            tokens -= cost[word]
        return " ".join(out)

    items = []
    for n in range(count):
        text = int(scale * rng.lognormvariate(math.log(150), 0.8))
        text = min(shape.text_max, max(shape.text_min, text))
        conversation = [
            {"from": "human", "value": "<image>\n" + words(text // 3)},
            {"from": "gpt", "value": words(text - text // 3)},
        ]
        items.append({"id": str(n), "image": f"tile_{n % 8}.png", "conversations": conversation})
    path = folder / "export.json"
    path.write_text(json.dumps(items))
    return path


def timing_callback(warmup: int, cuda: bool):
    """A TrainerCallback measuring real tokens and seconds after ``warmup`` optimizer steps."""
    import torch
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        start = stop = 0.0
        tokens_start = tokens_stop = 0
        peak: float | None = None

        def _mark(self, state) -> tuple[float, int]:
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter(), state.num_input_tokens_seen

        def on_train_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            if warmup == 0:
                self.start, self.tokens_start = self._mark(state)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                self.start, self.tokens_start = self._mark(state)
            self.stop, self.tokens_stop = self._mark(state)

        def on_train_end(self, args, state, control, **kwargs):
            if cuda:
                self.peak = torch.cuda.max_memory_allocated() / 2**30

        @property
        def tokens_per_s(self) -> float:
            return (self.tokens_stop - self.tokens_start) / max(self.stop - self.start, 1e-9)

    return Timer()


def run_plain(args, shape: Shape, model_dir: Path, export: Path, cuda: bool):
    """The plain transformers + peft recipe; returns (row, parameter count)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, Trainer, TrainingArguments

    from rsgpt4v.families import BoxConvention
    from rsgpt4v.finetune.collate import ChatEncoder, PadCollator
    from rsgpt4v.finetune.config import DataSource
    from rsgpt4v.finetune.data import SampleDataset, read_source

    encoder = ChatEncoder(model_dir, "llava")
    boxes = BoxConvention("llava", square_pad=True)
    samples = read_source(DataSource(path=export), boxes)
    dataset = SampleDataset(samples, encoder, boxes)
    model = AutoModelForImageTextToText.from_pretrained(
        model_dir, dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation="sdpa"
    )
    model.config.use_cache = False
    lora = LoraConfig(
        r=shape.lora_rank,
        lora_alpha=2 * shape.lora_rank,
        lora_dropout=0.05,
        target_modules=LANGUAGE_LINEARS,
        modules_to_save=["multi_modal_projector"],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    parameters = sum(p.numel() for p in peft_model.parameters())
    timer = timing_callback(args.warmup, cuda)
    training = TrainingArguments(
        output_dir=str(args.work / "plain"),
        per_device_train_batch_size=args.plain_batch_size,
        max_steps=args.warmup + args.steps,
        learning_rate=2e-4,
        bf16=cuda,
        save_strategy="no",
        logging_steps=10**6,
        report_to=[],
        remove_unused_columns=False,
        label_names=["labels"],
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=args.workers,
        use_cpu=not cuda,
        seed=args.seed,
    )
    trainer = Trainer(
        model=peft_model,
        args=training,
        train_dataset=dataset,
        data_collator=PadCollator(encoder.pad_token_id),
        callbacks=[timer],
    )
    trainer.train()
    row = Row("plain", f"{args.plain_batch_size} samples padded", "off", args.steps)
    row.tokens_per_s, row.peak_gib = timer.tokens_per_s, timer.peak
    del trainer, peft_model, model
    return row, parameters


def run_ours(args, shape: Shape, model_dir: Path, export: Path, budget: int, cuda: bool) -> Row:
    """``rsgpt4v finetune``'s code path: run_finetune with a config object."""
    from rsgpt4v.finetune.config import load_config
    from rsgpt4v.finetune.plan import resolve_liger
    from rsgpt4v.finetune.train import run_finetune

    config = load_config(
        None,
        [
            f"model={model_dir}",
            f"data={export}",
            f"output_dir={args.work / f'ours-{budget}'}",
            "resume=false",
            f"seed={args.seed}",
            f"max_steps={args.warmup + args.steps}",
            f"lora.r={shape.lora_rank}",
            f"lora.alpha={2 * shape.lora_rank}",
            "lora.dropout=0.05",
            "lora.projector=full",
            "train.learning_rate=2e-4",
            f"train.max_tokens_per_batch={budget}",
            "train.warmup=0",
            "train.gradient_checkpointing=true",
            "train.attn_implementation=sdpa",
            "train.eval_fraction=0",
            "train.save_steps=1000000",
            "train.logging_steps=1000000",
            "train.report_to=[]",
            f"train.num_workers={args.workers}",
            *args.set,
        ],
    )
    timer = timing_callback(args.warmup, cuda)
    result = run_finetune(config, callbacks=[timer])
    liger = "liger" if resolve_liger(config) else "no liger"
    checkpointing = "on" if config.train.gradient_checkpointing else "off"
    row = Row("ours", f"<= {budget} tokens, {liger}", checkpointing, args.steps)
    row.tokens_per_s, row.peak_gib = timer.tokens_per_s, timer.peak
    del result
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (tests, smoke)")
    parser.add_argument("--steps", type=int, default=10, help="measured optimizer steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps per row first")
    parser.add_argument("--samples", type=int, default=512, help="samples in the export")
    parser.add_argument("--plain-batch-size", type=int, default=4, help="plain recipe batch")
    parser.add_argument(
        "--max-tokens", type=int, nargs="+", help="token budget(s) of ours (one row each)"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="config override of ours (repeatable)"
    )
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--work", type=Path, help="folder for the model, data and runs")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def print_rows(rows: list[Row]) -> None:
    print(
        f"{'recipe':<7} {'batching':<28} {'ckpt':<5} {'steps':>5} {'tokens/s':>10} {'MFU':>6} "
        f"{'peak GiB':>9}"
    )
    for row in rows:
        start = f"{row.name:<7} {row.batching:<28} {row.checkpointing:<5} "
        if row.error:
            print(start + row.error)
            continue
        mfu = f"{row.mfu:.3f}" if row.mfu is not None else "n/a"
        peak = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "n/a"
        print(start + f"{row.steps:>5} {row.tokens_per_s:>10.1f} {mfu:>6} {peak:>9}")
    plain = rows[0]
    for row in rows[1:]:
        label = f"ours ({row.batching}) / plain tokens/s:"
        if plain.error or row.error:
            print(f"{label} n/a (a row failed)")
        else:
            print(f"{label} {row.tokens_per_s / plain.tokens_per_s:.2f}x")


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
    budgets = args.max_tokens or ([512] if args.tiny else [16384, 4096])
    if args.workers is None:
        args.workers = 4 if cuda else 0
    scratch = None
    if args.work is None:
        scratch = tempfile.TemporaryDirectory(prefix="bench-train-")
        args.work = Path(scratch.name)
    gpu = torch.cuda.get_device_name() if cuda else "cpu"
    peak_flops = next((v for k, v in PEAK_BF16_FLOPS.items() if k in gpu), None)
    print(
        f"device: {gpu} (peak bf16 {peak_flops / 1e12:.0f} TFLOP/s)"
        if peak_flops
        else f"device: {gpu} (no bf16 peak known: MFU not reported)"
    )
    model_dir = write_model(shape, args.work / "model", cuda)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    export = write_export(shape, args.work / "data", args.samples, args.seed, tokenizer)
    print(
        f"model: LLaVA-1.5-7B shape{' (tiny)' if args.tiny else ''}, LoRA r={shape.lora_rank} "
        f"+ projector; data: {args.samples} samples x ({shape.image_tokens} image + "
        f"{shape.text_min}-{shape.text_max} text tokens), llava export"
    )
    rows: list[Row] = []
    parameters = 0
    try:
        row, parameters = run_plain(args, shape, model_dir, export, cuda)
    except torch.OutOfMemoryError as error:
        row = Row("plain", f"{args.plain_batch_size} samples padded", "off")
        row.error = f"OOM ({str(error).splitlines()[0][:60]})"
    rows.append(row)
    # Liger patches the model classes for the whole process: ours runs after plain.
    for budget in budgets:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        try:
            rows.append(run_ours(args, shape, model_dir, export, budget, cuda))
        except torch.OutOfMemoryError as error:
            failed = Row("ours", f"<= {budget} tokens", "on")
            failed.error = f"OOM ({str(error).splitlines()[0][:60]})"
            rows.append(failed)
    for row in rows:
        if peak_flops and parameters and not row.error:
            row.mfu = 4 * parameters * row.tokens_per_s / peak_flops
    print_rows(rows)
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
