"""Tiny random-weight VLMs built offline, for tests, benchmarks plumbing and the README example.

No hub access is assumed anywhere in the project, so a model small enough to train on a CPU in
seconds is made from configs: a byte-level BPE tokenizer trained in memory on remote-sensing
words with the family's special tokens, the family's model config at hidden size 32 (by
default) with two layers, and our training chat template (finetune/templates.py). The folder
reloads through ``AutoModelForImageTextToText.from_pretrained``; LLaVA also through
``AutoProcessor``. Qwen-VL processors need torchvision (finetune.md §4.3): without it the
folder holds the tokenizer and the image processor config, which
:mod:`rsgpt4v.finetune.collate` combines itself.

    python -m rsgpt4v.finetune.tiny OUT_DIR --family llava
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.templates import TRAINING_TEMPLATES

FAMILIES = ("llava", "qwen2vl")

_CORPUS = [
    "the image shows an airplane parked next to a storage tank near the harbor .",
    "how many ships are in the image ? there are 3 ships .",
    "describe the scene in detail . a dense residential area with roads , trees and buildings .",
    "where is the vehicle ? the small vehicle is at the top left of the image .",
    "provide the bounding box of the bridge . the bridge is at [0.120, 0.450, 0.330, 0.600] .",
    '<|box_start|>(120,450),(330,600)<|box_end|> {"bbox_2d": [12, 45, 33, 60]}',
    "a chat between a curious human and an artificial intelligence assistant .",
    "you are a helpful assistant . what is the land use ? farmland , forest , river , lake .",
    "is there a tennis court ? yes . baseball diamond , ground track field , soccer field .",
    "large vehicle , helicopter , roundabout , swimming pool , container crane , windmill .",
    "0 1 2 3 4 5 6 7 8 9 , . ? ! ( ) [ ] { } : ; - _ ' \" the of and in on at to with",
]

_LLAVA_SPECIAL = ["<s>", "</s>", "<pad>", "<image>"]
_QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
]


def _tokenizer(special: list[str], vocab_size: int = 400, **tokens: str) -> Any:
    """A byte-level BPE trained in memory, every special token a single added token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", *special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **tokens)


def _text_config(tokenizer: Any, hidden_size: int) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
    }


def _llava(out: Path, hidden_size: int) -> None:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _tokenizer(_LLAVA_SPECIAL, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    text = LlamaConfig(**_text_config(tokenizer, hidden_size), bos_token_id=tokenizer.bos_token_id)
    vision = CLIPVisionConfig(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
    )
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=16,
    )
    LlavaForConditionalGeneration(config).save_pretrained(out)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=4,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TRAINING_TEMPLATES["llava"],
    )
    tokenizer.chat_template = TRAINING_TEMPLATES["llava"]
    processor.save_pretrained(out)


def _qwen2vl(out: Path, hidden_size: int) -> None:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    tokenizer = _tokenizer(_QWEN_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = tokenizer.convert_tokens_to_ids
    text = _text_config(tokenizer, hidden_size)
    text["bos_token_id"] = None
    text["rope_parameters"] = {
        "rope_type": "default",
        "mrope_section": [2, 1, 1],
        "rope_theta": 1e4,
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 4,
            "patch_size": 4,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "mlp_ratio": 2,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=None,
    )
    Qwen2VLForConditionalGeneration(config).save_pretrained(out)
    tokenizer.chat_template = TRAINING_TEMPLATES["qwen2vl"]
    image_kwargs = {"patch_size": 4, "merge_size": 2, "temporal_patch_size": 2}
    sizes = {"min_pixels": 64, "max_pixels": 1024}
    if importlib.util.find_spec("torchvision") is None:
        # The processor needs a video processor, which needs torchvision: save the parts.
        tokenizer.save_pretrained(out)
        Qwen2VLImageProcessorPil(**image_kwargs, **sizes).save_pretrained(out)
        return
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**image_kwargs, **sizes),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**image_kwargs),
        chat_template=TRAINING_TEMPLATES["qwen2vl"],
    )
    processor.save_pretrained(out)


def save_tiny_model(
    out_dir: str | Path, family: str = "llava", seed: int = 0, *, hidden_size: int = 32
) -> Path:
    """Write a tiny random-weight ``family`` model (safetensors) with its tokenizer to ``out_dir``.

    The same ``seed`` gives the same weights; the tokenizer is deterministic. ``hidden_size`` is
    the language model's width: bitsandbytes' CPU 4-bit kernels (0.50 and later) need linear
    layers at least one quantisation block (64) wide, as every real model's are.
    """
    if family not in FAMILIES:
        raise RsgptError(f"unknown tiny model family {family!r}; expected one of {FAMILIES}")
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        {"llava": _llava, "qwen2vl": _qwen2vl}[family](out, hidden_size)
    finally:
        torch.random.set_rng_state(state)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a tiny random-weight VLM for tests/demos.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--family", choices=FAMILIES, default="llava")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(save_tiny_model(args.out_dir, args.family, args.seed))


if __name__ == "__main__":
    main()
