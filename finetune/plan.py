"""How a run executes here: the batch plan over the processes and the speed settings.

The config states what a run computes (the global batch: samples per optimizer step over all
processes); this module derives how this machine computes it (micro-batch x accumulation x
processes) and resolves the ``auto`` speed settings for the hardware found. Both happen before
the first step, so a global batch that cannot be split, or a kernel that cannot run here, is one
clear message and not a failure mid-run.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.config import FinetuneConfig, TrainSettings

log = logging.getLogger(__name__)

# Families whose models Liger patches in the releases we test (liger-kernel 0.8.5 with
# transformers 5.2x: its Qwen2-VL forward does not import, Qwen2.5-VL's does).
LIGER_MODEL_TYPES = {"llava": "llava", "qwen2vl": "qwen2_vl", "qwen25vl": "qwen2_5_vl"}


@dataclass(frozen=True)
class BatchPlan:
    """Samples per optimizer step as this run makes them: micro x accumulation x processes."""

    processes: int
    micro_batch: float  # samples per forward pass and process (a mean under a token budget)
    accumulation: int
    token_budget: int | None = None

    @property
    def global_batch(self) -> float:
        """Samples per optimizer step over all processes."""
        return self.micro_batch * self.accumulation * self.processes

    def describe(self) -> str:
        if self.token_budget is None:
            micro = f"{int(self.micro_batch)} per device"
            total = f"{int(self.global_batch)}"
        else:
            micro = f"~{self.micro_batch:.1f} per device (<= {self.token_budget} padded tokens)"
            total = f"~{self.global_batch:.0f}"
        return (
            f"global batch {total} samples = {micro} x {self.accumulation} accumulation "
            f"x {self.processes} process(es)"
        )


def plan_batches(
    train: TrainSettings, processes: int, mean_budget_batch: float | None = None
) -> BatchPlan:
    """Split ``train.global_batch_size`` over ``processes``; the accumulation is what is left.

    With fixed micro-batches the split must be exact: a global batch that ``batch_size x
    processes`` does not divide is refused, naming the numbers. Under a token budget a micro-batch
    holds a varying number of samples, so the accumulation is the nearest whole number to
    ``global / (processes x mean_budget_batch)`` (at least 1) and the global batch is a mean.
    """
    if processes < 1:
        raise RsgptError(f"a run needs at least one process, got {processes}")
    budget = train.max_tokens_per_batch
    if budget is not None and mean_budget_batch is None:
        raise RsgptError("a token-budget plan needs the mean samples per budget batch")
    micro = float(mean_budget_batch) if budget is not None else float(train.batch_size)
    wanted = train.global_batch_size
    if wanted is None:
        return BatchPlan(processes, micro, train.grad_accumulation or 1, budget)
    if budget is not None:
        accumulation = max(1, round(wanted / (processes * micro)))
        return BatchPlan(processes, micro, accumulation, budget)
    per_step = train.batch_size * processes
    if wanted % per_step:
        raise RsgptError(
            f"train.global_batch_size {wanted} is not divisible by train.batch_size "
            f"{train.batch_size} x {processes} process(es) = {per_step}; choose a batch_size "
            f"that divides {wanted // processes if wanted % processes == 0 else wanted} "
            "per process, or another global batch"
        )
    return BatchPlan(processes, micro, wanted // per_step, None)


def trains_on_cpu(config: FinetuneConfig) -> bool:
    """``use_cpu``, or a machine without an accelerator.

    accelerate sets up several CPU processes (gloo) under torchrun only when told the run is on
    the CPU; otherwise each process would train alone and all of them would write.
    """
    import torch

    if config.train.use_cpu:
        return True
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, MPS, XPU, ...
    if accelerator is not None:
        return not accelerator.is_available()
    return not torch.cuda.is_available()


def cuda_training(config: FinetuneConfig) -> bool:
    """Whether the run trains on a CUDA GPU."""
    import torch

    return torch.cuda.is_available() and not config.train.use_cpu


def resolve_optim(config: FinetuneConfig) -> str:
    """The optimizer name for TrainingArguments; auto is fused AdamW on CUDA."""
    if config.train.optim != "auto":
        return config.train.optim
    return "adamw_torch_fused" if cuda_training(config) else "adamw_torch"


def resolve_tf32(config: FinetuneConfig) -> bool | None:
    """TrainingArguments' tf32: True on Ampere-or-newer CUDA, None (leave torch alone) else."""
    from transformers.utils import is_torch_tf32_available

    wanted = config.train.tf32
    available = cuda_training(config) and is_torch_tf32_available()
    if wanted is True and not available:
        raise RsgptError(
            "train.tf32: true needs an Ampere-or-newer CUDA GPU, and this run has none; "
            "set train.tf32: auto (on where available) or false"
        )
    if wanted == "auto":
        return True if available else None
    return bool(wanted)


def liger_available() -> bool:
    """Whether liger-kernel is installed (it is imported only when applied)."""
    return importlib.util.find_spec("liger_kernel") is not None


def resolve_liger(config: FinetuneConfig) -> bool:
    """Whether the run patches the model with Liger's kernels.

    ``auto`` is on where it is safe: liger-kernel installed, a CUDA GPU, a family Liger
    supports. ``true`` asks for it: a missing package or an unsupported family is an error.
    """
    wanted = config.train.liger
    if wanted is False:
        return False
    supported = config.family in LIGER_MODEL_TYPES
    if wanted == "auto":
        return liger_available() and cuda_training(config) and supported
    if not liger_available():
        raise RsgptError(
            "train.liger: true needs liger-kernel (pip install liger-kernel, or the rsgpt4v[gpu] "
            "extra); set train.liger: auto to use it only where installed"
        )
    if not supported:
        raise RsgptError(
            f"train.liger: Liger patches the families {', '.join(LIGER_MODEL_TYPES)}, not "
            f"{config.family!r}; set train.liger: auto or false"
        )
    return True


def check_run_devices(config: FinetuneConfig) -> None:
    """Refuse, before loading anything, settings this machine cannot run."""
    if resolve_liger(config) and not cuda_training(config):
        raise RsgptError(
            "train.liger: true: Liger's Triton kernels run on CUDA GPUs and this run has none; "
            "set train.liger: auto (on where a GPU is present) or false"
        )
    resolve_tf32(config)


def speed_arguments(config: FinetuneConfig) -> dict[str, Any]:
    """The speed settings as TrainingArguments keywords (methods.add_adapters applies Liger)."""
    train = config.train
    return {
        "optim": resolve_optim(config),
        "tf32": resolve_tf32(config),
        "max_grad_norm": train.max_grad_norm,
        "torch_compile": train.torch_compile,
    }
