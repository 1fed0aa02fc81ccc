"""Packed rows: several encoded samples in one padding-free row, each attending only to itself.

A sample's place in a packed row is marked by its ``position_ids``, which restart at 0 for every
sample. transformers 5 reads such restarts as sample boundaries when no attention mask is given:
flash-attention 2 turns them into varlen ``cu_seqlens`` (one row only: it checks packing for a
batch of one), and the other implementations build a block-diagonal causal mask
(``masking_utils.find_packed_sequence_indices``): a ``BlockMask`` that skips the blocks between
samples under flex_attention, a dense boolean one under sdpa and eager.

Qwen2-VL and Qwen2.5-VL rotate by 3-D mRoPE positions (time, height, width of each image token).
They must be computed per sample, by the model's own ``get_rope_index``: over the whole row the
positions would run on from the previous sample. The model takes them as a ``(4, batch, T)``
tensor whose first row holds the text positions, which it uses for the mask and for varlen, and
whose last three rows hold the mRoPE positions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from rsgpt4v.errors import RsgptError

IGNORE_INDEX = -100
IMAGE_TENSORS = ("pixel_values", "image_grid_thw")
# transformers' Qwen2-VL and Qwen2.5-VL classes do not support flex_attention.
FLEX_FAMILIES = ("llava",)

log = logging.getLogger(__name__)


class RopeIndex:
    """The model's own ``get_rope_index``: 3-D mRoPE positions of one sample.

    The method needs only the model's config, so the model is built on the meta device (no
    weights, about a second for a 7B config) the first time a sample asks, in each process that
    asks (a DataLoader worker builds its own rather than receiving a pickled one).
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self._model: Any = None

    @staticmethod
    def model_class(config: Any) -> type | None:
        """The base model class of ``config`` when it computes mRoPE positions, else None."""
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        try:
            model_class = MODEL_MAPPING[type(config)]
        except KeyError:
            return None
        return model_class if hasattr(model_class, "get_rope_index") else None

    def __call__(self, sample: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(3, n)`` positions of one encoded sample (``input_ids``, ``mm_token_type_ids``)."""
        if "mm_token_type_ids" not in sample:
            raise RsgptError(
                "packing a model with mRoPE positions needs mm_token_type_ids (image tokens 1, "
                "text 0) from the encoder; this sample has none"
            )
        if self._model is None:
            with torch.device("meta"):
                self._model = self.model_class(self.config)._from_config(self.config)
        positions, _ = self._model.get_rope_index(
            sample["input_ids"][None],
            mm_token_type_ids=sample["mm_token_type_ids"][None],
            image_grid_thw=sample.get("image_grid_thw"),
        )
        return positions[:, 0]

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_model": None}


def rope_index_for(config: Any) -> RopeIndex | None:
    """A :class:`RopeIndex` for models with mRoPE positions (Qwen2/2.5-VL), else None."""
    return RopeIndex(config) if RopeIndex.model_class(config) is not None else None


def sample_positions(sample: dict[str, torch.Tensor], rope_index: RopeIndex | None) -> torch.Tensor:
    """Positions of one sample as a packed row needs them: ``(n,)``, or ``(4, n)`` with mRoPE.

    The first row of the mRoPE layout is 0..n-1: transformers compares these for causality
    and boundaries, which the mRoPE rows (image tokens share positions) cannot serve.
    """
    text = torch.arange(len(sample["input_ids"]))
    if rope_index is None:
        return text
    return torch.cat([text[None], rope_index(sample)])


def pack_samples(samples: Sequence[dict[str, torch.Tensor]], rope_index: RopeIndex | None) -> dict:
    """One packed row from encoded samples, in order.

    Each sample's first label is ignored: the model shifts labels left, so that label would be
    predicted from the previous sample's last token. Images follow the row order, as the
    placeholders do, which is the order the model consumes them in.
    """
    labels = []
    for sample in samples:
        sample_labels = sample["labels"].clone()
        sample_labels[0] = IGNORE_INDEX
        labels.append(sample_labels)
    row: dict[str, torch.Tensor] = {
        "input_ids": torch.cat([s["input_ids"] for s in samples]),
        "labels": torch.cat(labels),
        "position_ids": torch.cat([sample_positions(s, rope_index) for s in samples], dim=-1),
    }
    return row | _joined_extras(samples)


def _joined_extras(features: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Image tensors joined in order, and Qwen-VL's token types joined along the tokens."""
    joined = {}
    for key in IMAGE_TENSORS:
        parts = [f[key] for f in features if key in f]
        if parts:
            joined[key] = torch.cat(parts)
    if "mm_token_type_ids" in features[0]:
        joined["mm_token_type_ids"] = torch.cat([f["mm_token_type_ids"] for f in features])
    return joined


def collate_packed(rows: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A batch of packed rows as a single padding-free row, without an attention mask.

    Joining the rows (rather than padding them to one width) wastes no tokens and is what
    flash-attention needs: it reads position-id restarts as boundaries only in a batch of one.
    """
    positions = torch.cat([r["position_ids"] for r in rows], dim=-1)
    batch = {
        "input_ids": torch.cat([r["input_ids"] for r in rows])[None],
        "labels": torch.cat([r["labels"] for r in rows])[None],
        # (T,) -> (1, T); mRoPE (4, T) -> (4, 1, T)
        "position_ids": positions.unsqueeze(-2),
    }
    extras = _joined_extras(rows)
    if "mm_token_type_ids" in extras:
        extras["mm_token_type_ids"] = extras["mm_token_type_ids"][None]
    return batch | extras


def packed_attention(
    requested: str | None, family: str, *, cuda: bool, half_precision: bool
) -> str | None:
    """The attention implementation for packed rows: varlen, else a sparse block mask.

    flash-attention 2 (installed, on CUDA, in bf16/fp16) attends within each sample and nothing
    else; flex_attention skips the blocks between samples; sdpa and eager compute the whole
    row x row product under a dense mask, which at 16k-token rows costs more than the packing
    saves. Only a request for sdpa (or none) is upgraded: eager, flex or flash stay as asked.
    On the CPU neither upgrade runs (no flash-attention, no flex backward), so sdpa stays.
    """
    if requested not in (None, "sdpa") or not cuda:
        return requested
    from transformers.utils import is_flash_attn_2_available, is_torch_flex_attn_available

    if half_precision and is_flash_attn_2_available():
        chosen = "flash_attention_2"
    elif family in FLEX_FAMILIES and is_torch_flex_attn_available():
        chosen = "flex_attention"
    else:
        log.warning(
            "packing with %s attention: each packed row gets a dense row x row mask; install "
            "flash-attn (pip install flash-attn) for per-sample varlen attention",
            requested or "the model's default",
        )
        return requested
    log.info("packing: attention %s instead of %s", chosen, requested or "the model's default")
    return chosen
