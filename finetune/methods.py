"""The base model and its adapters: LoRA, DoRA, QLoRA (peft) and MoE-LoRA (finetune/moe_lora).

Adapters are placed by component, from explicit module paths (config ``components``), never by
bare layer names: ``q_proj`` alone also hits CLIP's attention in LLaVA and ``all-linear`` wraps
the vision tower and the projector (finetune.md §4.8). The target list is computed from the
loaded model, so what gets an adapter is exactly what the config asks for, and the count per
component is logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.config import FinetuneConfig

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
PROJECTOR_FILE = "projector.safetensors"


def use_bf16(config: FinetuneConfig) -> bool:
    """bf16 as configured; ``auto`` means a CUDA GPU that supports it."""
    import torch

    if config.train.bf16 == "auto":
        return (
            not config.train.use_cpu
            and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported()
        )
    return bool(config.train.bf16)


def _under(name: str, prefix: str | None) -> bool:
    return bool(prefix) and (name == prefix or name.startswith(prefix + "."))


def component_of(name: str, config: FinetuneConfig) -> str | None:
    """Which component a module path belongs to (the projector wins over the vision tower)."""
    parts = config.components
    for component in ("projector", "vision", "language"):
        if _under(name.removeprefix("base_model.model."), getattr(parts, component)):
            return component
    return None


def lora_targets(model: Any, config: FinetuneConfig) -> list[str]:
    """Full paths of the linear layers that get adapters, from the component settings."""
    import torch

    lora = config.lora
    targets = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        component = component_of(name, config)
        if component == "language" and lora.language:
            if name.rsplit(".", 1)[-1] in lora.language_modules:
                targets.append(name)
        elif (component == "vision" and lora.vision) or (
            component == "projector" and lora.projector == "lora"
        ):
            targets.append(name)
    if not targets:
        raise RsgptError(
            "no linear layer matches the LoRA settings; check lora.language_modules and the "
            f"component paths {config.components.model_dump()}"
        )
    return targets


def adapter_counts(model: Any, config: FinetuneConfig) -> dict[str, int]:
    """Adapted modules per component (LoRA layers and fully trained modules)."""
    counts = {"language": 0, "vision": 0, "projector": 0}
    for name, module in model.named_modules():
        kind = type(module).__name__
        adapted = (
            hasattr(module, "lora_A")
            or kind.startswith("MoELora")
            or kind == "ModulesToSaveWrapper"
        )
        if adapted:
            component = component_of(name, config)
            if component:
                counts[component] += 1
    return counts


def load_base_model(config: FinetuneConfig, *, quantized: bool | None = None) -> Any:
    """The base model from its local folder; 4-bit (vision and projector kept) for QLoRA."""
    import torch
    from transformers import AutoModelForImageTextToText

    quantized = config.quantized if quantized is None else quantized
    dtype = torch.bfloat16 if use_bf16(config) else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": config.trust_remote_code}
    if config.train.attn_implementation:
        kwargs["attn_implementation"] = config.train.attn_implementation
    if quantized:
        cuda = check_4bit_support(config)
        from transformers import BitsAndBytesConfig

        parts = config.components
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=config.quant.quant_type,
            bnb_4bit_use_double_quant=config.quant.double_quant,
            bnb_4bit_compute_dtype=dtype,
            # Packed 4-bit weights stored as the compute dtype, so FSDP can shard them with the
            # unquantised layers (a uint8 storage cannot be flattened together with bf16).
            bnb_4bit_quant_storage=dtype,
            # transformers 5 matches these from the start of the full module path.
            llm_int8_skip_modules=[p for p in (parts.vision, parts.projector) if p] + ["lm_head"],
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0")) if cuda else "cpu"}
    if not Path(config.model).is_dir():
        raise RsgptError(f"model folder not found: {config.model} (local paths only)")
    model = AutoModelForImageTextToText.from_pretrained(config.model, **kwargs)
    if quantized and not cuda:
        _check_cpu_4bit_widths(model)
    # No cache in training; without one, packed rows get block-diagonal attention.
    for config_part in (model.config, getattr(model.config, "text_config", None)):
        if config_part is not None:
            config_part.use_cache = False
    return model


CPU_4BIT_BLOCK = 64  # bitsandbytes' CPU 4-bit kernels quantise blocks of 64 inputs


def check_4bit_support(config: FinetuneConfig) -> bool:
    """Refuse a 4-bit base where bitsandbytes cannot run it; True when it runs on CUDA.

    bitsandbytes trains 4-bit layers on CUDA GPUs and, in recent releases, on the CPU. A small
    4-bit layer is run once on the device the model will use, so a missing package or backend is
    one clear message before the base is loaded, not a failure in the first training step.
    """
    import torch

    label = "method qlora" if config.method == "qlora" else "quant.bits: 4"
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise RsgptError(
            f"{label} loads the base in 4-bit with bitsandbytes, which is not installed here "
            "(Linux: pip install bitsandbytes); use method lora or dora, or quant.bits: 16"
        ) from None
    cuda = torch.cuda.is_available() and not config.train.use_cpu
    device = "cuda" if cuda else "cpu"
    try:
        probe = bnb.nn.Linear4bit(
            CPU_4BIT_BLOCK,
            CPU_4BIT_BLOCK,
            bias=False,
            compute_dtype=torch.float32,
            quant_type=config.quant.quant_type,
        ).to(device)
        probe(torch.zeros(1, CPU_4BIT_BLOCK, device=device))
    except Exception as error:  # any failure of the backend means: not supported here
        raise RsgptError(
            f"{label}: bitsandbytes {bnb.__version__} cannot run 4-bit layers on the {device} of "
            f"this machine ({type(error).__name__}: {error}); train on a CUDA GPU, or with "
            "quant.bits: 16"
        ) from None
    return cuda


def _check_cpu_4bit_widths(model: Any) -> None:
    """bitsandbytes' CPU kernels need 4-bit layers a whole number of 64-input blocks wide."""
    for name, module in model.named_modules():
        width = getattr(module, "in_features", None)
        if type(module).__name__ == "Linear4bit" and width and width % CPU_4BIT_BLOCK:
            raise RsgptError(
                f"bitsandbytes' CPU 4-bit kernels quantise blocks of {CPU_4BIT_BLOCK} inputs; "
                f"{name} has {width} inputs. Train this model on a CUDA GPU, or with "
                "quant.bits: 16"
            )


def apply_liger(model: Any, config: FinetuneConfig) -> bool:
    """Swap in Liger's kernels (train.liger) on the base model; whether they were applied.

    Liger replaces the RMSNorm and SwiGLU modules, RoPE and the loss (a fused linear
    cross-entropy that never materialises the logits) in place. It also patches the family's
    modelling module, so every model of that family built later in the process has them too.
    """
    from rsgpt4v.finetune.plan import LIGER_MODEL_TYPES, resolve_liger

    if not resolve_liger(config):
        return False
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    try:
        _apply_liger_kernel_to_instance(model=model)
    except ImportError as error:  # a Liger release that does not fit this transformers
        if config.train.liger is True:
            raise RsgptError(
                f"train.liger: Liger cannot patch {LIGER_MODEL_TYPES[config.family]} models with "
                f"the installed transformers ({error}); set train.liger: auto or false"
            ) from None
        log.warning("Liger kernels not applied (%s); training without them", error)
        return False
    log.info("Liger kernels applied (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU)")
    return True


def add_adapters(model: Any, config: FinetuneConfig) -> Any:
    """Freeze the base, swap in Liger's kernels where asked, attach the configured adapters."""
    import torch

    targets = lora_targets(model, config)
    apply_liger(model, config)
    if config.quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    if config.method == "moe_lora":
        model = _add_moe_lora(model, config, targets)
    else:
        from peft import LoraConfig, get_peft_model

        full = [config.components.projector] if config.lora.projector == "full" else None
        lora = LoraConfig(
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=targets,
            modules_to_save=full,
            use_dora=config.method == "dora",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    # Trainable weights in float32 (a fully trained projector of a bf16 base included): the
    # optimizer's updates are too small for bf16; autocast still runs the matmuls in bf16.
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype in (torch.bfloat16, torch.float16):
            parameter.data = parameter.data.float()
    counts = adapter_counts(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("adapters per component %s; %d trainable parameters", counts, trainable)
    return model


def moe_module() -> Any:
    """finetune/moe_lora.py, with a clear error where it is missing."""
    try:
        from rsgpt4v.finetune import moe_lora
    except ImportError as error:
        raise RsgptError(
            f"method moe_lora needs rsgpt4v.finetune.moe_lora, which cannot be imported: {error}"
        ) from error
    return moe_lora


def _add_moe_lora(model: Any, config: FinetuneConfig, targets: list[str]) -> Any:
    moe = moe_module()
    settings = {
        "rank": config.lora.r,
        "alpha": config.lora.alpha,
        "dropout": config.lora.dropout,
        "target_modules": targets,
        **config.moe,
    }
    model = moe.apply_moe_lora(model, moe.MoELoraConfig(**settings))
    if config.lora.projector == "full":
        for name, parameter in model.named_parameters():
            if component_of(name, config) == "projector":
                parameter.requires_grad_(True)
    return model


def projector_state(model: Any, config: FinetuneConfig) -> dict[str, Any]:
    """Weights of a fully trained projector (MoE-LoRA runs save them beside the adapter)."""
    return {
        name: parameter.detach().cpu().contiguous()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and component_of(name, config) == "projector"
    }


def save_adapters(
    model: Any, config: FinetuneConfig, out_dir: Path, state_dict: dict[str, Any] | None = None
) -> Path:
    """Write the trained adapter (and a fully trained projector) to ``out_dir``.

    ``state_dict`` is the whole model's state gathered from its shards (FSDP, ZeRO-3; see
    ``FinetuneTrainer.save_final``); without it the model's own tensors are written. Call it on
    one process only.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.method != "moe_lora":
        model.save_pretrained(out_dir, state_dict=state_dict)
        return out_dir
    from safetensors.torch import save_file

    moe = moe_module()
    if state_dict is None:
        moe.save_moe_lora(model, out_dir)
        projector = projector_state(model, config)
    else:
        experts = {k: state_dict[k].contiguous().cpu() for k in moe.moe_lora_state_dict(model)}
        save_file(experts, str(out_dir / moe.WEIGHTS_NAME), metadata={"format": "pt"})
        (out_dir / moe.CONFIG_NAME).write_text(
            json.dumps(model.moe_lora_config.model_dump(), indent=2) + "\n"
        )
        projector = {k: state_dict[k].contiguous().cpu() for k in projector_state(model, config)}
    if config.lora.projector == "full":
        save_file(projector, str(out_dir / PROJECTOR_FILE))
    return out_dir


def load_adapters(model: Any, config: FinetuneConfig, adapter_dir: Path) -> None:
    """Load adapter weights saved by :func:`save_adapters` into an adapted ``model``."""
    if config.method == "moe_lora":
        _load_moe_weights(model, adapter_dir)
        projector = adapter_dir / PROJECTOR_FILE
        if projector.is_file():
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(projector)), strict=False)
        return
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, state)
    if result.unexpected_keys:
        raise RsgptError(
            f"adapter in {adapter_dir} does not fit the model: {result.unexpected_keys[:3]}"
        )


def _load_moe_weights(model: Any, adapter_dir: Path) -> None:
    """Experts and routers into a model that may already carry MoE-LoRA layers (resume)."""
    import torch
    from safetensors.torch import load_file

    moe = moe_module()
    if not moe.moe_lora_layers(model):
        moe.load_moe_lora(model, adapter_dir)
        return
    saved = load_file(str(adapter_dir / moe.WEIGHTS_NAME))
    expected = moe.moe_lora_state_dict(model)
    if set(saved) != set(expected):
        raise RsgptError(f"MoE-LoRA adapter in {adapter_dir} does not fit the model")
    with torch.no_grad():
        for key, tensor in expected.items():
            tensor.copy_(saved[key])
