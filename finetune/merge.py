"""``rsgpt4v merge``: fold a LoRA/DoRA adapter into the full-precision base and prove it.

A merge that silently drops weights (a fully trained projector, a vision LoRA) is the most
reported failure of VLM fine-tuning tools (finetune.md §5). So the merge here loads the base in
float32, applies the adapter, computes reference logits on a probe conversation with an image,
merges, saves model + processor + chat template as safetensors, reloads the saved folder
through ``AutoModelForImageTextToText`` and reports the largest logit difference. A 4-bit base
is refused (merging into quantised weights loses the adapter's precision): merge a QLoRA
adapter into the bf16/fp32 base instead. MoE-LoRA cannot be merged: its router picks experts
per input, so there is no single weight matrix to fold them into.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.config import FinetuneConfig, read_run_config
from rsgpt4v.finetune.methods import ADAPTER_DIR
from rsgpt4v.schema import Message

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PROBE_TURNS = [
    Message(role="user", content="Describe the image and give the box of the largest object."),
    Message(role="assistant", content="A harbour with two ships; the largest is at the top."),
]


@dataclass
class MergeResult:
    output: Path
    max_abs_diff: float
    reload_max_abs_diff: float
    dtype: str


def _run_and_adapter(path: Path) -> tuple[FinetuneConfig, Path]:
    """Accept a run folder (with adapter/) or its adapter folder."""
    run_dir = path.parent if (path / "adapter_config.json").is_file() else path
    adapter = path if run_dir != path else path / ADAPTER_DIR
    config = read_run_config(run_dir)
    if not adapter.is_dir():
        raise RsgptError(f"no adapter in {run_dir}: the run has not finished ({adapter} missing)")
    return config, adapter


def check_mergeable(config: FinetuneConfig, base: Path) -> None:
    """Refuse what cannot be merged faithfully, with what to do instead."""
    if config.method == "moe_lora":
        raise RsgptError(
            "a MoE-LoRA adapter cannot be merged: its router picks experts per input; load it "
            "with rsgpt4v.finetune.moe_lora.load_moe_lora on the base model instead"
        )
    config_file = base / "config.json"
    if not config_file.is_file():
        raise RsgptError(f"base model folder not found or has no config.json: {base}")
    if "quantization_config" in json.loads(config_file.read_text(encoding="utf-8")):
        raise RsgptError(
            f"the base at {base} is quantised; merging into 4-bit weights loses the adapter's "
            "precision. Pass --base with the full-precision (bf16/fp32) model instead"
        )


def _probe_inputs(encoder: Any) -> dict[str, torch.Tensor]:
    from PIL import Image

    from rsgpt4v.finetune.collate import PadCollator

    image = Image.new("RGB", (64, 48), (90, 120, 160))
    batch = PadCollator(encoder.pad_token_id)([encoder.encode(PROBE_TURNS, image)])
    batch.pop("labels")
    return batch


@torch.no_grad()
def _logits(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    return model(**inputs).logits.float()


def merge_adapter(
    run: str | Path, output: str | Path, *, base: str | Path | None = None, dtype: str = "auto"
) -> MergeResult:
    """Merge ``run``'s adapter into its base, save to ``output``, and compare the logits."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForImageTextToText

    from rsgpt4v.finetune.collate import ChatEncoder

    config, adapter = _run_and_adapter(Path(run))
    base_dir = Path(base or config.model)
    check_mergeable(config, base_dir)
    output = Path(output)
    if output.resolve() in (base_dir.resolve(), adapter.resolve()):
        raise RsgptError("the output folder must differ from the base and the adapter")
    kwargs = {"trust_remote_code": config.trust_remote_code}
    base_config = AutoConfig.from_pretrained(base_dir, **kwargs)
    if dtype == "auto":
        saved = getattr(base_config, "dtype", None) or torch.float32
        dtype = str(saved).removeprefix("torch.")
    if dtype not in DTYPES:
        raise RsgptError(f"unknown dtype {dtype!r}; choose from auto, {', '.join(DTYPES)}")
    encoder = ChatEncoder(
        adapter, config.family, mode=config.encoder, model_config=base_config, **kwargs
    )
    inputs = _probe_inputs(encoder)
    model = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32, **kwargs)
    model = PeftModel.from_pretrained(model, adapter)
    reference = _logits(model, inputs)
    merged = model.merge_and_unload()
    left = [k for k in merged.state_dict() if "lora_" in k or "modules_to_save" in k]
    if left:
        raise RsgptError(f"adapter weights left after merging: {left[:3]}")
    diff = (_logits(merged, inputs) - reference).abs().max().item()
    merged.to(DTYPES[dtype]).save_pretrained(output)
    if encoder.processor is not None:
        encoder.processor.chat_template = encoder.template
        encoder.processor.save_pretrained(output)
    else:
        encoder.tokenizer.chat_template = encoder.template
        encoder.tokenizer.save_pretrained(output)
        encoder.image_processor.save_pretrained(output)
    reloaded = AutoModelForImageTextToText.from_pretrained(output, dtype=torch.float32, **kwargs)
    reload_diff = (_logits(reloaded, inputs) - reference).abs().max().item()
    log.info(
        "merged into %s: max |logit diff| %.3g (in memory), %.3g (reloaded)",
        output,
        diff,
        reload_diff,
    )
    return MergeResult(output, diff, reload_diff, dtype)
