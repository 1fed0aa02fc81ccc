"""``rsgpt4v finetune``: the curriculum of stages on the HF Trainer, resumable at any point.

Layout of a run folder (``output_dir``)::

    finetune.yaml            the resolved config (``rsgpt4v merge`` reads it)
    stages/NN-NAME/          checkpoint-*/ of the stage, then final/ with DONE when it ends
    runs/NN-NAME/            TensorBoard logs
    adapter/                 the final adapter + tokenizer/processor + chat template

Each stage continues from the weights the previous stage left (same model object, a fresh
optimizer and schedule). With ``resume: true`` a rerun skips finished stages (loading their
adapters) and continues the unfinished one from its newest checkpoint, so an interrupted run
ends with the same weights as an uninterrupted one.

Launched on several processes (``torchrun``, ``accelerate launch``), every process trains and
only the main one writes: the run folder's files, the checkpoints (the Trainer's own saving) and
the adapters, which are gathered from their shards first under FSDP / ZeRO-3.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from rsgpt4v.errors import RsgptError
from rsgpt4v.finetune.collate import ChatEncoder, PadCollator
from rsgpt4v.finetune.config import FinetuneConfig, Stage, dump_config
from rsgpt4v.finetune.data import PackedDataset, Sample, SampleDataset, stage_samples
from rsgpt4v.finetune.methods import (
    ADAPTER_DIR,
    add_adapters,
    check_4bit_support,
    component_of,
    load_adapters,
    load_base_model,
    moe_module,
    save_adapters,
    use_bf16,
)
from rsgpt4v.finetune.plan import (
    BatchPlan,
    check_run_devices,
    plan_batches,
    speed_arguments,
    trains_on_cpu,
)
from rsgpt4v.finetune.run_folder import (
    DONE,
    HELD_OUT,
    check_same_run,
    copy_adapter,
    resume_point,
    write_held_out,
)

log = logging.getLogger(__name__)


class FinetuneTrainer(Trainer):
    """HF Trainer plus: projector learning rate, MoE load-balancing loss, token-budget batches."""

    def __init__(self, *args: Any, finetune: FinetuneConfig, lengths: list[int], **kwargs: Any):
        self.finetune = finetune
        self.lengths = lengths
        self._moe_aux: list[float] = []  # coef x balance loss of each training forward
        super().__init__(*args, **kwargs)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        moe = self.finetune.method == "moe_lora"
        if moe:  # the balance gradient is divided like the LM loss (moe_lora module docstring)
            steps = getattr(self, "current_gradient_accumulation_steps", None)
            moe_module().set_aux_loss_scale(
                self.accelerator.unwrap_model(model),
                steps or self.args.gradient_accumulation_steps,
            )
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if moe and model.training:
            unwrapped = self.accelerator.unwrap_model(model)
            coef = unwrapped.moe_lora_config.load_balance_coef
            self._moe_aux.append(coef * moe_module().moe_aux_loss(unwrapped).item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Training logs carry the MoE load-balancing loss apart from the LM loss."""
        if self._moe_aux and "loss" in logs:
            logs["moe_aux_loss"] = sum(self._moe_aux) / len(self._moe_aux)
            self._moe_aux.clear()
        super().log(logs, *args, **kwargs)

    def create_optimizer(self, model: Any = None) -> Any:
        """Adapters at the stage LR; a fully trained projector at ``train.projector_lr``."""
        if self.optimizer is not None:
            return self.optimizer
        model = model if model is not None else self.model
        adapters, projector = [], []
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                in_projector = component_of(name, self.finetune) == "projector"
                full = in_projector and self.finetune.lora.projector == "full"
                (projector if full and "lora_" not in name else adapters).append(parameter)
        groups = [{"params": adapters, "weight_decay": self.args.weight_decay}]
        if projector:
            groups.append(
                {
                    "params": projector,
                    "lr": self.finetune.train.projector_lr,
                    "weight_decay": self.args.weight_decay,
                }
            )
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def get_train_dataloader(self) -> Any:
        budget = self.finetune.train.max_tokens_per_batch
        if budget is None:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        from rsgpt4v.finetune.batching import TokenBudgetBatchSampler

        sampler = TokenBudgetBatchSampler(
            self.lengths, budget, shuffle=True, seed=self.args.data_seed or self.args.seed
        )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )
        return self.accelerator.prepare(loader)

    def save_final(self, out_dir: Path) -> None:
        """Write the stage's adapter once, from the main process; every process takes part.

        Under FSDP the adapter lives in shards: every process joins accelerate's gather of the
        full state dict (whatever ``fsdp_state_dict_type`` the checkpoints use). Under DeepSpeed
        ZeRO-3 ``save_model`` gathers it (``stage3_gather_16bit_weights_on_model_save``). With
        DDP or one process each process holds the whole adapter and only the main one writes.
        """
        if self.is_fsdp_enabled:
            state_dict = self.accelerator.get_state_dict(self.model)
            if self.args.should_save:
                self._save(str(out_dir), state_dict=state_dict)
        else:
            self.save_model(str(out_dir))
        if self.args.should_save:
            log.info("process %d wrote the adapter to %s", self.args.process_index, out_dir)
        self.accelerator.wait_for_everyone()

    # MoE-LoRA models are not peft models: checkpoint only what trains, not the whole base.
    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        if self.finetune.method != "moe_lora":
            return super()._save(output_dir, state_dict)
        if self.args.should_save:
            save_adapters(
                self.accelerator.unwrap_model(self.model),
                self.finetune,
                Path(output_dir or self.args.output_dir),
                state_dict,
            )
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if self.finetune.method != "moe_lora":
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_adapters(model or self.model, self.finetune, Path(resume_from_checkpoint))
        return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _training_arguments(
    config: FinetuneConfig,
    stage: Stage,
    stage_dir: Path,
    has_eval: bool,
    plan: BatchPlan | None = None,
) -> TrainingArguments:
    """The stage's TrainingArguments; ``plan`` gives the accumulation (default: one process)."""
    train = config.train
    if plan is None:
        plan = plan_batches(train, 1, 1.0 if train.max_tokens_per_batch else None)
    return TrainingArguments(
        output_dir=str(stage_dir),
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=plan.accumulation,
        learning_rate=stage.learning_rate or train.learning_rate,
        num_train_epochs=stage.epochs,
        max_steps=stage.max_steps,
        warmup_steps=train.warmup if train.warmup < 1 else int(train.warmup),
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler,
        bf16=use_bf16(config),
        activation_checkpointing=train.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        eval_strategy="steps" if has_eval else "no",
        eval_steps=train.eval_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        logging_steps=train.logging_steps,
        report_to=train.report_to,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=train.num_workers,
        dataloader_pin_memory=torch.cuda.is_available() and not train.use_cpu,
        use_cpu=trains_on_cpu(config),
        remove_unused_columns=False,
        label_names=["labels"],
        # Logged as num_input_tokens_seen: real tokens (packed rows hold no padding).
        include_num_input_tokens_seen="all" if train.packing else "non_padding",
        **speed_arguments(config),
    )


def _stage_dirs(config: FinetuneConfig) -> list[tuple[Stage, str]]:
    return [(stage, f"{n:02d}-{stage.name}") for n, stage in enumerate(config.curriculum())]


@dataclass
class FinetuneResult:
    """What a run produced: the adapter folder, the trained model and each stage's log."""

    adapter: Path
    model: Any
    encoder: ChatEncoder
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    resumed_from: dict[str, str] = field(default_factory=dict)


def _processes(config: FinetuneConfig) -> Any:
    """accelerate's view of the launch: one process, or the torchrun / accelerate group."""
    from accelerate import PartialState

    return PartialState(cpu=trains_on_cpu(config))


def run_finetune(
    config: FinetuneConfig, callbacks: list[TrainerCallback] | None = None
) -> FinetuneResult:
    """Train every stage in order; the adapter ends in ``output_dir/adapter``.

    ``callbacks`` join every stage's Trainer (bench/train.py times steps with one).
    """
    if not Path(config.model).is_dir():
        raise RsgptError(f"model folder not found: {config.model} (local paths only)")
    check_run_devices(config)
    if config.quantized:
        check_4bit_support(config)
    out = Path(config.output_dir)
    if isinstance(config.resume, Path) and not config.resume.is_dir():
        raise RsgptError(f"resume checkpoint not found: {config.resume}")
    state = _processes(config)
    if config.resume is not False:
        check_same_run(config, out)
    _seed_everything(config.seed)
    splits = {
        stage.name: stage_samples(stage, config.boxes, config.train.eval_fraction, config.seed)
        for stage, _ in _stage_dirs(config)
    }
    state.wait_for_everyone()  # every process has read the previous run before it is replaced
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if config.resume is False:
            for owned in (out / "stages", out / ADAPTER_DIR):
                if owned.is_dir():
                    log.warning("resume=false: removing %s of the previous run", owned)
                    shutil.rmtree(owned)
        dump_config(config, out / "finetune.yaml")
        write_held_out(splits.values(), out / HELD_OUT)
    state.wait_for_everyone()
    encoder = ChatEncoder(
        config.model,
        config.family,
        mode=config.encoder,
        chat_template=config.chat_template,
        trust_remote_code=config.trust_remote_code,
        max_pixels=config.max_pixels,
    )
    model = add_adapters(load_base_model(config), config)
    augment = None
    if config.augment.ops:
        from rsgpt4v.finetune.augment import BoxAwareAugment

        augment = BoxAwareAugment(config.augment.ops, p=config.augment.p, seed=config.seed)
    history: dict[str, list[dict[str, float]]] = {}
    resumed_from: dict[str, str] = {}
    final = out
    for stage, folder in _stage_dirs(config):
        stage_dir = out / "stages" / folder
        final = stage_dir / "final"
        if config.resume is not False and (final / DONE).is_file():
            log.info("stage %s already finished; loading its adapter", stage.name)
            load_adapters(model, config, final)
            continue
        checkpoint = resume_point(config, stage_dir)
        if checkpoint:
            log.info("stage %s resumes from %s", stage.name, checkpoint)
            resumed_from[stage.name] = checkpoint
        trainer = _stage_trainer(
            config,
            stage,
            splits[stage.name],
            stage_dir,
            out / "runs" / folder,
            model,
            encoder,
            augment,
            state.num_processes,
            callbacks,
        )
        history[stage.name] = _train_stage(trainer, stage, checkpoint)
        trainer.save_final(final)
        if state.is_main_process:
            (final / DONE).write_text("finished\n", encoding="utf-8")
        del trainer
        state.wait_for_everyone()
    adapter_dir = out / ADAPTER_DIR
    if state.is_main_process:
        copy_adapter(final, adapter_dir)
        _save_preprocessing(encoder, adapter_dir)
    state.wait_for_everyone()
    return FinetuneResult(adapter_dir, model, encoder, history, resumed_from)


def stage_plan(config: FinetuneConfig, lengths: list[int], processes: int) -> BatchPlan:
    """The stage's batch plan; under a token budget, from the mean samples per budget batch."""
    budget = config.train.max_tokens_per_batch
    mean = None
    if budget is not None:
        from rsgpt4v.finetune.batching import TokenBudgetBatchSampler

        batches = len(TokenBudgetBatchSampler(lengths, budget, seed=config.seed))
        mean = len(lengths) / max(batches, 1)
    return plan_batches(config.train, processes, mean)


def _stage_trainer(
    config: FinetuneConfig,
    stage: Stage,
    split: tuple[list[Sample], list[Sample]],
    stage_dir: Path,
    log_dir: Path,
    model: Any,
    encoder: ChatEncoder,
    augment: Any,
    processes: int,
    callbacks: list[TrainerCallback] | None,
) -> FinetuneTrainer:
    """The stage's datasets, batch plan and Trainer, as ``rsgpt4v finetune`` trains them."""
    train_samples, eval_samples = split
    max_length = config.train.max_length
    train_set: Any = SampleDataset(
        train_samples, encoder, config.boxes, augment=augment, max_length=max_length
    )
    if config.train.packing:
        train_set = PackedDataset(train_set, config.train.max_length)
    eval_set = (
        SampleDataset(eval_samples, encoder, config.boxes, max_length=max_length)
        if eval_samples
        else None
    )
    plan = stage_plan(config, train_set.lengths, processes)
    log.info(
        "stage %s: %d train / %d eval samples; %s",
        stage.name,
        len(train_set),
        len(eval_set) if eval_set else 0,
        plan.describe(),
    )
    previous = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir)
    try:
        return FinetuneTrainer(
            model=model,
            args=_training_arguments(config, stage, stage_dir, eval_set is not None, plan),
            train_dataset=train_set,
            eval_dataset=eval_set,
            data_collator=PadCollator(encoder.pad_token_id),
            finetune=config,
            lengths=train_set.lengths,
            callbacks=callbacks,
        )
    finally:
        if previous is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous


def _train_stage(
    trainer: FinetuneTrainer, stage: Stage, checkpoint: str | None
) -> list[dict[str, float]]:
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics(f"eval-{stage.name}", metrics)
    return list(trainer.state.log_history)


def _save_preprocessing(encoder: ChatEncoder, out_dir: Path) -> None:
    """Tokenizer/processor with the training chat template, so the adapter folder is whole."""
    if encoder.processor is not None:
        encoder.processor.chat_template = encoder.template
        encoder.processor.save_pretrained(out_dir)
    else:
        encoder.tokenizer.chat_template = encoder.template
        encoder.tokenizer.save_pretrained(out_dir)
        encoder.image_processor.save_pretrained(out_dir)
