"""Conversations → model inputs with labels on the assistant's tokens only, and batch padding.

The chat template (finetune/templates.py, or the model's own when it marks assistant turns
with ``{% generation %}``) is applied to structured messages; the assistant-token mask it gives
becomes the labels, so system, user, image and padding tokens never carry loss. Two ways in:

- **processor**: ``processor.apply_chat_template`` does tokenisation, image processing and the
  expansion of the image placeholder (any family whose processor loads);
- **manual**: the tokenizer renders one placeholder, the image processor makes the pixels and
  this module expands the placeholder to the family's token count. Qwen-VL processors cannot be
  built without torchvision (finetune.md §4.3); the tokenizer and image processor can, so the
  CPU test suite trains Qwen2-VL this way. For LLaVA both ways give identical tensors (tested).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.families import processor_budget, smart_resize
from rsgpt4v.finetune.packing import collate_packed
from rsgpt4v.finetune.templates import TRAINING_TEMPLATES
from rsgpt4v.schema import Message

IGNORE_INDEX = -100
MANUAL_FAMILIES = ("llava", "qwen2vl", "qwen25vl")
IMAGE_KEYS = ("pixel_values", "image_grid_thw")


def structured(turns: list[Message], image: Any = None, with_image: bool = False) -> list[dict]:
    """Chat-template messages; the image block opens the first user turn."""
    messages = []
    placed = False
    for turn in turns:
        content: list[dict[str, Any]] = []
        if with_image and not placed and turn.role == "user":
            content.append(
                {"type": "image", "image": image} if image is not None else {"type": "image"}
            )
            placed = True
        content.append({"type": "text", "text": turn.content})
        messages.append({"role": turn.role, "content": content})
    return messages


def resolve_template(family: str, own: str | None, override: str | None) -> str:
    """The template to train with: explicit file, ours for the family, or the model's own."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise InputError("chat template file not found", file=path)
        template = path.read_text(encoding="utf-8")
    elif family in TRAINING_TEMPLATES:
        template = TRAINING_TEMPLATES[family]
    elif own:
        template = own
    else:
        raise RsgptError(f"the model has no chat template; set chat_template for family {family!r}")
    if "generation" not in template:
        raise RsgptError(
            "the chat template does not mark assistant turns with {% generation %}, so the "
            "assistant tokens cannot be found; give a training template (chat_template: FILE)"
        )
    return template


class ChatEncoder:
    """Encodes one conversation (+ image) into ``input_ids``, ``labels`` and image tensors.

    Tokenizer and processor come from ``model_dir``; the model config (image token id, vision
    geometry) from there too unless ``model_config`` is given (an adapter folder has none).
    """

    def __init__(
        self,
        model_dir: str | Path,
        family: str,
        *,
        mode: str = "auto",
        chat_template: str | None = None,
        trust_remote_code: bool = False,
        model_config: Any = None,
        max_pixels: int | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

        kwargs = {"trust_remote_code": trust_remote_code}
        self.family = family
        self.config = model_config or AutoConfig.from_pretrained(model_dir, **kwargs)
        self.processor = None
        if mode in ("auto", "processor"):
            try:
                processor = AutoProcessor.from_pretrained(model_dir, **kwargs)
            except (ImportError, OSError, ValueError, TypeError, AttributeError) as error:
                if mode == "processor":
                    raise RsgptError(f"cannot load the model's processor: {error}") from error
                processor = None
            if processor is not None and hasattr(processor, "image_processor"):
                self.processor = processor
            elif mode == "processor":
                raise RsgptError(f"{model_dir} has no multimodal processor")
        if self.processor is not None:
            self.tokenizer = self.processor.tokenizer
            self.image_processor = self.processor.image_processor
        else:
            if family not in MANUAL_FAMILIES:
                raise RsgptError(
                    f"family {family!r} needs its processor, which did not load (Qwen-VL style "
                    "processors need torchvision)"
                )
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, **kwargs)
            self.image_processor = AutoImageProcessor.from_pretrained(model_dir, **kwargs)
        if max_pixels is not None:
            # Qwen-VL: the pixel budget of one image, hence its token count (longest_edge holds
            # a pixel count in transformers 5, finetune.md §4.3).
            self.image_processor.size["longest_edge"] = max_pixels
        self.mode = "processor" if self.processor is not None else "manual"
        self.template = resolve_template(family, self.tokenizer.chat_template, chat_template)
        self.image_token_id = int(self.config.image_token_id)
        if self.tokenizer.pad_token_id is None:
            raise RsgptError("the tokenizer has no pad token; set one in the model folder")
        self.pad_token_id = int(self.tokenizer.pad_token_id)

    # -- image token accounting ------------------------------------------------------------
    def shown_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) the vision tower sees: Qwen-VL resizes to a patch grid."""
        if self.family not in ("qwen2vl", "qwen25vl"):
            return width, height
        low, high, factor = processor_budget(self.image_processor)
        h, w = smart_resize(height, width, factor, low, high)
        return w, h

    def num_image_tokens(self, width: int, height: int) -> int:
        """Placeholder tokens one image of this size expands to."""
        if self.family in ("qwen2vl", "qwen25vl"):
            w, h = self.shown_size(width, height)
            patch, merge = self.image_processor.patch_size, self.image_processor.merge_size
            return (w // patch) * (h // patch) // merge**2
        vision = self.config.vision_config
        side = vision.image_size // vision.patch_size
        extra = 1 if getattr(self.config, "vision_feature_select_strategy", "") == "full" else 0
        return side * side + extra

    def estimate_length(self, turns: list[Message], image_size: tuple[int, int] | None) -> int:
        """Tokens of the encoded sample, without loading its image."""
        messages = structured(turns, with_image=image_size is not None)
        ids = self.tokenizer.apply_chat_template(
            messages, chat_template=self.template, tokenize=True, return_dict=True
        )["input_ids"]
        if image_size is None:
            return len(ids)
        return len(ids) - 1 + self.num_image_tokens(*image_size)

    # -- encoding ----------------------------------------------------------------------------
    def encode(self, turns: list[Message], image: Any = None) -> dict[str, torch.Tensor]:
        """``input_ids``/``labels`` (1-D) plus the image tensors the model takes."""
        messages = structured(turns, image, with_image=image is not None)
        if self.processor is not None:
            out = self.processor.apply_chat_template(
                [messages],
                chat_template=self.template,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                return_assistant_tokens_mask=True,
            )
            ids = out["input_ids"][0]
            mask = torch.as_tensor(out["assistant_masks"][0])
            extra = {k: v for k, v in out.items() if k in IMAGE_KEYS}
            if "mm_token_type_ids" in out:
                extra["mm_token_type_ids"] = out["mm_token_type_ids"][0]
        else:
            ids, mask, extra = self._encode_manual(messages, image)
        if self.family in ("qwen2vl", "qwen25vl") and "mm_token_type_ids" not in extra:
            # Qwen-VL's M-RoPE needs to know which tokens are image tokens (1) or text (0).
            extra["mm_token_type_ids"] = (ids == self.image_token_id).long()
        labels = torch.where(mask.bool(), ids, torch.full_like(ids, IGNORE_INDEX))
        labels[ids == self.image_token_id] = IGNORE_INDEX
        if not bool((labels != IGNORE_INDEX).any()):
            raise InputError("the conversation has no assistant tokens to learn from")
        return {"input_ids": ids, "labels": labels, **extra}

    def _encode_manual(
        self, messages: list[dict], image: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        out = self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids = torch.tensor(out["input_ids"], dtype=torch.long)
        mask = torch.tensor(out["assistant_masks"], dtype=torch.long)
        if image is None:
            return ids, mask, {}
        pixels = self.image_processor(images=[image], return_tensors="pt")
        extra = {k: pixels[k] for k in IMAGE_KEYS if k in pixels}
        if "image_grid_thw" in extra:
            count = int(math.prod(extra["image_grid_thw"][0].tolist())) // (
                self.image_processor.merge_size**2
            )
        else:
            count = self.num_image_tokens(*image.size)
        where = (ids == self.image_token_id).nonzero().flatten().tolist()
        if len(where) != 1:
            raise InputError(f"expected one image placeholder, the template wrote {len(where)}")
        at = where[0]
        expand = torch.full((count,), self.image_token_id, dtype=torch.long)
        ids = torch.cat([ids[:at], expand, ids[at + 1 :]])
        mask = torch.cat([mask[:at], torch.zeros(count, dtype=torch.long), mask[at + 1 :]])
        return ids, mask, extra


class PadCollator:
    """Right-pads ``input_ids`` (pad id) and ``labels`` (-100) and joins the image tensors.

    Packed rows (they carry ``position_ids``, :class:`~rsgpt4v.finetune.data.PackedDataset`)
    are joined into one padding-free row with no attention mask instead
    (:func:`~rsgpt4v.finetune.packing.collate_packed`).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if "position_ids" in features[0]:
            return collate_packed(features)
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(features), width), dtype=torch.long)
        token_types = "mm_token_type_ids" in features[0]
        types = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            ids[row, :n] = feature["input_ids"]
            labels[row, :n] = feature["labels"]
            attention[row, :n] = 1
            if token_types:
                types[row, :n] = feature["mm_token_type_ids"]
        batch = {"input_ids": ids, "labels": labels, "attention_mask": attention}
        if token_types:
            batch["mm_token_type_ids"] = types
        pixels = [f["pixel_values"] for f in features if "pixel_values" in f]
        if pixels:
            batch["pixel_values"] = torch.cat(pixels)
        grids = [f["image_grid_thw"] for f in features if "image_grid_thw" in f]
        if grids:
            batch["image_grid_thw"] = torch.cat(grids)
        return batch
