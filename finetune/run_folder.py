"""A run folder's bookkeeping: which checkpoint to resume, whether a folder holds this run, the
held-out split and the final adapter copy (kept apart from the training loop in ``train``)."""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.config import FinetuneConfig
from rsgpt4v.finetune.data import Sample
from rsgpt4v.schema import JsonlWriter

log = logging.getLogger(__name__)

DONE = "DONE"
HELD_OUT = "heldout.jsonl"  # the run's held-out instructions, read by `rsgpt4v predict RUN`


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None when it is whole.

    The Trainer writes ``trainer_state.json`` after the weights and the optimizer, and
    ``torch.save`` files are zip archives whose directory is written last, so a save cut by a
    kill lacks the state file or has a ``.pt``/``.bin`` file that is no complete zip.
    """
    if not (checkpoint / "trainer_state.json").is_file():
        return "no trainer_state.json (the save did not finish)"
    for path in sorted(checkpoint.glob("*.pt")) + sorted(checkpoint.glob("*.bin")):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is cut short (no complete torch.save archive)"
    return None


def newest_checkpoint(stage_dir: Path) -> Path | None:
    """The whole checkpoint-N folder with the largest N, if any; cut ones are skipped."""
    found = [p for p in stage_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for checkpoint in sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        log.warning("not resuming from %s: %s", checkpoint, problem)
    return None


def resume_point(config: FinetuneConfig, stage_dir: Path) -> str | None:
    if config.resume is False:
        return None
    if config.resume is True:
        found = newest_checkpoint(stage_dir)
        return str(found) if found else None
    checkpoint = Path(config.resume)
    if checkpoint.parent.resolve() != stage_dir.resolve():
        return None
    if not checkpoint.is_dir():
        raise RsgptError(f"resume checkpoint not found: {checkpoint}")
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise RsgptError(f"cannot resume from {checkpoint}: {problem}; give an earlier one")
    return str(checkpoint)


# Settings that change what a run computes; a resumed run must agree on all of them.
_RUN_DEFINING = (
    "model",
    "family",
    "method",
    "box_style",
    "square_pad",
    "chat_template",
    "max_pixels",
    "seed",
    "lora",
    "moe",
    "quant",
    "components",
    "augment",
)
_TRAIN_DEFINING = (
    "learning_rate",
    "projector_lr",
    "global_batch_size",
    "batch_size",
    "grad_accumulation",
    "max_grad_norm",
    "max_tokens_per_batch",
    "max_length",
    "packing",
    "warmup",
    "weight_decay",
    "lr_scheduler",
    "eval_fraction",
)


def fingerprint(config: FinetuneConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    train = data["train"]
    if train["global_batch_size"] is None:  # runs written before global batches: explicit 1
        train["grad_accumulation"] = train["grad_accumulation"] or 1
    stages = [stage.model_dump(mode="json") for stage in config.curriculum()]
    return {
        **{key: data[key] for key in _RUN_DEFINING},
        "train": {key: train[key] for key in _TRAIN_DEFINING},
        "stages": stages,
    }


def check_same_run(config: FinetuneConfig, out: Path) -> None:
    """Refuse to resume a run folder that was trained with different settings."""
    from rsgpt4v.finetune.config import read_run_config

    started = (out / "stages").is_dir() and any((out / "stages").iterdir())
    if not started or not (out / "finetune.yaml").is_file():
        return
    old, new = fingerprint(read_run_config(out)), fingerprint(config)
    changed = [key for key in new if old.get(key) != new[key]]
    if changed:
        raise RsgptError(
            f"{out} holds a run trained with other settings ({', '.join(changed)} differ); "
            "resuming would mix them. Use another output_dir, or resume=false to start over"
        )


def copy_adapter(final: Path, adapter_dir: Path) -> None:
    """The last stage's adapter is the run's: copy it, less the stage's bookkeeping files."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    for path in final.iterdir():
        if path.is_file() and path.name not in (DONE, "training_args.bin"):
            shutil.copy2(path, adapter_dir / path.name)


def write_held_out(splits: Iterable[tuple[list[Sample], list[Sample]]], path: Path) -> int:
    """Write the instructions no stage trained on, for ``rsgpt4v predict RUN``; their count.

    A sample held out by one stage but trained on by another is not held out. Held-out items of
    llava / sharegpt exports are counted in the log only (score them with ``predict --benchmark
    export`` on a split of the export).
    """
    splits = list(splits)
    trained = {s.key for train, _ in splits for s in train}
    held: dict[str, Sample] = {}
    for _, held_out in splits:
        for sample in held_out:
            if sample.key not in trained:
                held.setdefault(sample.key, sample)
    exports = sum(s.instruction is None for s in held.values())
    if exports:
        log.warning("%d held-out sample(s) of export files are not written to %s", exports, path)
    instructions = [s.instruction for s in held.values() if s.instruction is not None]
    with JsonlWriter(path) as writer:
        for instruction in instructions:
            writer.write(instruction)
    log.info("held out %d instruction(s) → %s", len(instructions), path)
    return len(instructions)
