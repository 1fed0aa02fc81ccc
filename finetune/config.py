"""The fine-tuning configuration: one YAML file, overridable with ``--set key=value``.

Every field carries its help string (``FinetuneConfig.model_json_schema()`` lists them), so
the YAML files under ``finetune/configs/`` read as documentation. Family defaults (box style,
component module paths) are filled in after loading, so a config only states what it changes.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rsgpt4v.boxfmt import STYLES
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.families import BoxConvention

Family = Literal["llava", "qwen2vl", "qwen25vl", "other"]
Method = Literal["lora", "qlora", "dora", "moe_lora"]

# Box style each family was pretrained with (README box-style table).
FAMILY_BOX_STYLE = {"llava": "llava", "qwen2vl": "qwen2vl", "qwen25vl": "qwen25vl"}
# Module paths of the three components in transformers 5 (finetune.md §4.1).
FAMILY_COMPONENTS = {
    "llava": ("model.language_model", "model.vision_tower", "model.multi_modal_projector"),
    "qwen2vl": ("model.language_model", "model.visual", "model.visual.merger"),
    "qwen25vl": ("model.language_model", "model.visual", "model.visual.merger"),
}
BUNDLED_CONFIGS = Path(__file__).parent / "configs"
LANGUAGE_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSource(_Section):
    """One training file and how much of it goes into a stage's mix."""

    path: Path = Field(
        description="instructions.jsonl (boxes re-rendered per family), or a llava / sharegpt "
        "export (.json/.jsonl) whose text is used as written."
    )
    format: Literal["auto", "instructions", "llava", "sharegpt"] = Field(
        "auto", description="File layout; auto looks at the first item."
    )
    image_root: Path | None = Field(
        None,
        description="Folder the image paths are relative to (default: the file's folder).",
    )
    weight: float = Field(
        1.0,
        gt=0,
        description="Share of the file in the mix: 0.5 takes a seeded half, 2 repeats it twice.",
    )
    tasks: list[str] | None = Field(
        None, description="Keep only instructions of these tasks (instructions files only)."
    )


class Stage(_Section):
    """One curriculum stage; each stage continues from the weights the previous one left."""

    name: str = Field(description="Stage name, also its folder under output_dir/stages.")
    data: list[DataSource] = Field(min_length=1, description="The stage's data mix.")
    epochs: float = Field(1.0, gt=0, description="Passes over the stage's mix.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: epochs).")
    learning_rate: float | None = Field(None, gt=0, description="Overrides train.learning_rate.")

    @field_validator("data", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        return _as_sources(value)


class LoraSettings(_Section):
    """Adapter shape and where adapters go, per component."""

    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA alpha (scale = alpha / r).")
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Dropout on the LoRA input; default 0.05, and 0 for method dora (with "
        "dropout, DoRA runs the base layer a second time).",
    )
    language: bool = Field(True, description="LoRA on the language model's linear layers.")
    language_modules: list[str] = Field(
        default_factory=lambda: list(LANGUAGE_LINEARS),
        description="Names of the language model's linear layers that get adapters.",
    )
    vision: bool = Field(False, description="LoRA on every linear layer of the vision tower.")
    projector: Literal["frozen", "lora", "full"] = Field(
        "frozen",
        description="The vision-language projector: frozen, LoRA, or fully trained "
        "(LLaVA-1.5's recipe, at train.projector_lr).",
    )


class Components(_Section):
    """Module paths of the model's parts; known families fill these in."""

    language: str | None = Field(None, description="Language model, e.g. model.language_model.")
    vision: str | None = Field(None, description="Vision tower, e.g. model.vision_tower.")
    projector: str | None = Field(None, description="Projector, e.g. model.multi_modal_projector.")


class QuantSettings(_Section):
    """bitsandbytes 4-bit settings for QLoRA (the vision tower and projector stay unquantised)."""

    bits: Literal[16, 4] = Field(
        16,
        description="4: load the base in bitsandbytes 4-bit, for any method (method qlora is "
        "lora with bits 4; moe_lora with bits 4 is MoE-LoRA on a QLoRA base); 16: as stored.",
    )
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    double_quant: bool = Field(True, description="Quantise the quantisation constants too.")


class AugmentSettings(_Section):
    """Box-aware augmentation (finetune/augment.py); the text is re-rendered from moved boxes."""

    ops: list[str] = Field(
        default_factory=list, description="Any of hflip, vflip, rotate90, crop, colour; [] = off."
    )
    p: float = Field(0.5, ge=0, le=1, description="Probability of each op.")


class TrainSettings(_Section):
    """Optimisation and bookkeeping, mapped onto transformers' TrainingArguments."""

    learning_rate: float = Field(2e-4, gt=0, description="Adapter learning rate.")
    projector_lr: float = Field(2e-5, gt=0, description="LR of a fully trained projector.")
    global_batch_size: int | None = Field(
        None,
        gt=0,
        description="Samples per optimizer step over all processes (LLaVA-1.5: 128). The "
        "accumulation is derived from the world size: global / (batch_size x processes), "
        "which must divide evenly; under max_tokens_per_batch, from the mean batch. "
        "Default: no accumulation unless grad_accumulation says so.",
    )
    batch_size: int = Field(
        4, gt=0, description="Micro-batch: samples per forward pass on each process."
    )
    grad_accumulation: int | None = Field(
        None,
        gt=0,
        description="Micro-batches accumulated per optimizer step on each process (global "
        "batch = batch_size x grad_accumulation x processes); instead of global_batch_size.",
    )
    max_tokens_per_batch: int | None = Field(
        None, gt=0, description="Batch by a padded-token budget instead of batch_size."
    )
    max_length: int = Field(
        4096, gt=0, description="Longer samples are skipped (never cut inside image tokens)."
    )
    packing: bool = Field(
        False,
        description="Pack short samples into rows of up to max_length tokens, a batch joined "
        "into one padding-free row; each sample attends only to itself (position ids restart, "
        "3-D mRoPE per sample for Qwen-VL). On CUDA, sdpa becomes flash_attention_2 when "
        "installed, else flex_attention (LLaVA).",
    )
    warmup: float = Field(0.03, ge=0, description="Warmup: a fraction (< 1) or a step count.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    lr_scheduler: str = Field("cosine", description="transformers scheduler name.")
    bf16: bool | Literal["auto"] = Field(
        "auto", description="bf16 weights and autocast; auto: on where the GPU supports it."
    )
    gradient_checkpointing: bool = Field(True, description="Recompute activations (less memory).")
    liger: bool | Literal["auto"] = Field(
        "auto",
        description="Liger's Triton kernels (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU; "
        "pip install liger-kernel); auto: on with a CUDA GPU where Liger supports the family.",
    )
    tf32: bool | Literal["auto"] = Field(
        "auto", description="TF32 matmuls for float32 work; auto: on with a CUDA GPU."
    )
    optim: str = Field(
        "auto",
        description="transformers optimizer name (adamw_torch_fused, adamw_torch, "
        "adamw_bnb_8bit, ...); auto: fused AdamW on a CUDA GPU, else adamw_torch.",
    )
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0: off).")
    torch_compile: bool = Field(
        False, description="torch.compile the model (the first steps compile; GPU runs)."
    )
    eval_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of each stage's data held out for eval loss."
    )
    eval_steps: int = Field(200, gt=0, description="Evaluate every N steps.")
    save_steps: int = Field(500, gt=0, description="Checkpoint every N steps.")
    save_total_limit: int | None = Field(3, description="Checkpoints kept per stage.")
    logging_steps: int = Field(10, gt=0, description="Log every N steps.")
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Loggers; TensorBoard logs go to output_dir/runs.",
    )
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes.")
    use_cpu: bool = Field(False, description="Train on the CPU even when a GPU is present.")
    attn_implementation: str | None = Field(
        None, description="sdpa, flash_attention_2 or eager (default: the model's choice)."
    )


class FinetuneConfig(_Section):
    """Everything ``rsgpt4v finetune`` needs; see finetune/configs/*.yaml."""

    model: str = Field(description="Local folder of the base model (no hub access assumed).")
    family: Family = Field(
        "llava", description="llava, qwen2vl, qwen25vl, or other (set components and box_style)."
    )
    method: Method = Field("lora", description="lora, qlora (4-bit base), dora or moe_lora.")
    trust_remote_code: bool = Field(False, description="Allow model code from the model folder.")
    box_style: str | None = Field(None, description="Box style in the text (default: family's).")
    square_pad: bool | None = Field(
        None,
        description="Pad images to a square and write boxes relative to it (LLaVA-1.5 "
        "image_aspect_ratio=pad); default: on for llava.",
    )
    encoder: Literal["auto", "processor", "manual"] = Field(
        "auto",
        description="auto: the model's processor when it loads, else tokenizer + image "
        "processor (Qwen-VL without torchvision); manual forces the latter.",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja file of a training chat template with {% generation %} around "
        "assistant turns (default: ours for known families, else the model's own).",
    )
    max_pixels: int | None = Field(
        None,
        gt=0,
        description="Qwen-VL: most pixels of an image after resizing (its token budget; "
        "1003520 = 1280 tokens of 28x28); default: the model's image processor setting.",
    )
    output_dir: Path = Field(Path("runs/finetune"), description="Where checkpoints/adapters go.")
    resume: bool | Path = Field(
        True,
        description="true: continue from the newest checkpoint under output_dir; a path: that "
        "checkpoint; false: start over (the previous run's stages/ and adapter/ are removed).",
    )
    seed: int = Field(0, description="Seed of weights init, data order, split and augmentation.")
    data: list[DataSource] = Field(
        default_factory=list, description="Single-stage shorthand: the data of one stage."
    )
    epochs: float = Field(1.0, gt=0, description="Epochs of the single-stage shorthand.")
    max_steps: int = Field(-1, description="Steps of the single-stage shorthand (-1: epochs).")
    stages: list[Stage] = Field(default_factory=list, description="Ordered curriculum stages.")
    lora: LoraSettings = Field(
        default_factory=LoraSettings, description="Adapter rank/alpha and targets per component."
    )
    components: Components = Field(
        default_factory=Components, description="Module paths (filled in for known families)."
    )
    quant: QuantSettings = Field(
        default_factory=QuantSettings, description="4-bit settings of method qlora."
    )
    moe: dict[str, Any] = Field(
        default_factory=dict,
        description="MoE-LoRA settings passed to finetune.moe_lora.MoELoraConfig "
        "(num_experts, top_k, routing token|sequence, load_balance_coef, ...).",
    )
    augment: AugmentSettings = Field(
        default_factory=AugmentSettings, description="Box-aware augmentation (instructions only)."
    )
    train: TrainSettings = Field(
        default_factory=TrainSettings, description="Optimisation, batching and bookkeeping."
    )

    @field_validator("data", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        return _as_sources(value)

    @property
    def boxes(self) -> BoxConvention:
        """The box convention the run trains with; predict and evaluate read it back."""
        resize = self.box_style == "qwen25vl"
        return BoxConvention(
            self.box_style or "llava",
            square_pad=self.square_pad,
            max_pixels=self.max_pixels if resize else None,
        )

    @property
    def quantized(self) -> bool:
        """Whether the base is loaded in 4-bit (QLoRA)."""
        return self.method == "qlora" or self.quant.bits == 4

    @model_validator(mode="after")
    def _method_defaults(self) -> FinetuneConfig:
        if self.lora.dropout is None:
            self.lora.dropout = 0.0 if self.method == "dora" else 0.05
        train = self.train
        if train.global_batch_size is not None and train.grad_accumulation is not None:
            raise ValueError(
                "train.global_batch_size and train.grad_accumulation both set: give the global "
                "batch (the accumulation is derived from the world size) or the accumulation"
            )
        return self

    @model_validator(mode="after")
    def _family_defaults(self) -> FinetuneConfig:
        if self.box_style is None:
            if self.family == "other":
                raise ValueError("family 'other' needs box_style")
            self.box_style = FAMILY_BOX_STYLE[self.family]
        if self.box_style not in STYLES:
            raise ValueError(f"unknown box_style {self.box_style!r}; known: {', '.join(STYLES)}")
        if self.square_pad is None:
            self.square_pad = self.family == "llava" and self.box_style == "llava"
        if self.family in FAMILY_COMPONENTS:
            language, vision, projector = FAMILY_COMPONENTS[self.family]
            parts = self.components
            parts.language = parts.language or language
            parts.vision = parts.vision or vision
            parts.projector = parts.projector or projector
        elif not self.components.language:
            raise ValueError("family 'other' needs components.language (and vision/projector)")
        if self.max_pixels is not None and self.family not in ("qwen2vl", "qwen25vl"):
            raise ValueError("max_pixels applies to the Qwen-VL families only")
        if self.train.packing:
            import torch

            from rsgpt4v.finetune.packing import packed_attention

            self.train.attn_implementation = packed_attention(
                self.train.attn_implementation,
                self.family,
                cuda=torch.cuda.is_available() and not self.train.use_cpu,
                half_precision=self.train.bf16 is not False,
            )
        if self.train.packing and self.moe.get("routing") == "sequence":
            raise ValueError("train.packing cannot be combined with MoE-LoRA sequence routing")
        if not self.stages and not self.data:
            raise ValueError("give data (one stage) or stages (a curriculum)")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return self

    def curriculum(self) -> list[Stage]:
        """The stages to run in order (the shorthand ``data`` makes one stage named main)."""
        if self.stages:
            return list(self.stages)
        return [Stage(name="main", data=self.data, epochs=self.epochs, max_steps=self.max_steps)]


def _as_sources(value: Any) -> Any:
    """Let ``data: file.jsonl`` or a list of paths stand for data sources."""
    if isinstance(value, (str, Path)):
        value = [value]
    if isinstance(value, list):
        return [{"path": str(v)} if isinstance(v, (str, Path)) else v for v in value]
    return value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists, creating dicts on the way."""
    parts = key.split(".")
    node: Any = tree
    for part, following in pairwise(parts):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(f"--set {key}: no list item {part!r}")
            node = node[int(part)]
            continue
        if not isinstance(node.get(part), (dict, list)):
            node[part] = [] if following.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise InputError(f"--set {key}: no list item {last!r}")
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` pairs; values are YAML (``true``, ``3``, ``[a, b]``, ``1e-4``)."""
    for pair in overrides:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set expects key=value, got {pair!r}")
        value = yaml.safe_load(text) if text.strip() else ""
        if isinstance(value, str) and _looks_numeric(value):
            value = float(value)
        _set_dotted(tree, key.strip(), value)
        _normalise_sources(tree)
    return tree


def _normalise_sources(tree: dict[str, Any]) -> None:
    """Expand path shorthands in place so that ``data.0.image_root`` can follow ``data=x``."""
    if "data" in tree:
        tree["data"] = _as_sources(tree["data"])
    for stage in tree.get("stages") or []:
        if isinstance(stage, dict) and "data" in stage:
            stage["data"] = _as_sources(stage["data"])


def _looks_numeric(text: str) -> bool:
    """YAML 1.1 reads ``1e-4`` as a string; accept it as a number like a user expects."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> FinetuneConfig:
    """Read a YAML config, apply ``--set`` overrides, validate.

    A bare name (``tiny-llava``) that is not a file names a config shipped in finetune/configs.

    Relative paths in the config are relative to the working directory, as on the command line.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        bundled = BUNDLED_CONFIGS / f"{path.name.removesuffix('.yaml')}.yaml"
        if not path.is_file() and path.parent == Path(".") and bundled.is_file():
            path = bundled
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in BUNDLED_CONFIGS.glob("*.yaml")))
            raise InputError(f"config file not found (bundled configs: {known})", file=path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise InputError(f"not valid YAML: {error}", file=path) from None
        if not isinstance(loaded, dict):
            raise InputError("a config must be a YAML mapping", file=path)
        tree = loaded
    _normalise_sources(tree)
    apply_overrides(tree, overrides or [])
    try:
        config = FinetuneConfig.model_validate(tree)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise InputError(f"{where}: {first['msg']}", file=path) from None
    return config


def dump_config(config: FinetuneConfig, path: Path) -> None:
    """Write the resolved config next to the run (``rsgpt4v merge`` reads it back)."""
    path.write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )


def read_run_config(run_dir: Path) -> FinetuneConfig:
    """The config a run was trained with, from ``run_dir/finetune.yaml``."""
    path = run_dir / "finetune.yaml"
    if not path.is_file():
        raise RsgptError(f"{run_dir} is not a finetune run folder (no finetune.yaml)")
    return load_config(path)
