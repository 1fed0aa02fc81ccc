"""MoE-LoRA: a mixture of LoRA experts with a learned router on each targeted linear layer.

The RS-GPT4V paper adapts LLaVA with a mixture of LoRA experts so that different instruction
tasks (captions, grounding, counting, reasoning QA) can use different low-rank updates. Each
targeted ``nn.Linear`` becomes :class:`MoELoraLinear`::

    y = base(x) + alpha / rank * sum_{e in top_k} gate_e * B_e(A_e(dropout(x)))

``B_e`` starts at zero, so the wrapped model computes exactly what the base computes at step 0.
The gates come from a router (a bias-free linear map to ``num_experts`` logits, softmax, keep the
``top_k`` largest, renormalise):

- ``routing="token"``: each token routes on its own hidden state (causal, as the model is);
- ``routing="sequence"``: each sequence routes once, on the mean hidden state of its **prompt**
  (task-level routing): the non-padding positions before the first supervised label in training,
  every non-padding position of the prefill at inference. So the route never sees the answer it
  is trained to produce, and the same prompt gets the same route in training and generation. The
  padding mask and the labels reach the layers through a **forward pre-hook on the model** that
  reads the ``attention_mask`` and ``labels`` keywords of every forward call. Packed rows
  (``position_ids`` restarting inside a row, no attention mask) hold several samples and are
  refused for sequence routing. In cached generation each sequence keeps the experts its prompt
  chose (the hook sees the cache).

Only the chosen experts run (**sparse dispatch**): the tokens routed to an expert are gathered,
pass through its ``A`` and ``B``, and are added back, so top-2 of 8 experts costs a quarter of
the expert FLOPs of computing all 8 (``bench/moe_lora.py``).

**Load balancing.** Each layer computes the Switch-Transformer loss
``num_experts * sum_e f_e * P_e`` (``f_e``: share of the top-k assignments that went to expert
``e``; ``P_e``: mean router probability of ``e``; over the tokens, or sequences, that route),
which is 1 for perfectly balanced routing. The loss used is ``load_balance_coef`` times its
**mean over layers** (0.01 times about 1 at initialisation, whatever the depth). It is not added
to the returned loss: each layer injects its share's gradient in the backward pass (Megatron-LM's
``MoEAuxLossAutoScaler``), so nothing captured in a forward outlives it and activation
checkpointing's recompute frees what it builds. The trainer divides that share by the gradient
accumulation steps, as it divides the language-modelling loss (:func:`set_aux_loss_scale`), and
logs the loss apart (:func:`moe_aux_loss`: the detached mean over layers of the last forward).

MoE-LoRA cannot be merged into the base weights (the update depends on the input through the
gates); :func:`save_moe_lora` writes only the experts and routers, :func:`load_moe_lora` puts
them back on a fresh base.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rsgpt4v.errors import RsgptError

WEIGHTS_NAME = "moe_lora.safetensors"
CONFIG_NAME = "moe_lora_config.json"
# (num_experts - top_k) * rank, the expert width sparse dispatch skips per token, from which it
# is faster than dense on the CPU build machine (bench/moe_lora.py); GPUs are not measured yet.
SPARSE_FROM = 256
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class MoELoraConfig(BaseModel):
    """Settings of a mixture of LoRA experts (the ``moe_lora`` section of a finetune config)."""

    model_config = ConfigDict(extra="forbid")

    num_experts: int = Field(4, ge=1, description="LoRA experts per targeted linear layer.")
    top_k: int = Field(2, ge=1, description="Experts mixed per token (or per sequence).")
    rank: int = Field(
        8, ge=1, description="Rank of each expert's A (rank x in) and B (out x rank)."
    )
    alpha: float = Field(
        16.0, gt=0, description="Scale: the expert sum is multiplied by alpha/rank."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the experts' input.")
    routing: Literal["token", "sequence"] = Field(
        "token",
        description="'token': route every token on its hidden state; 'sequence': route each "
        "sequence once on the mean of its non-padding hidden states (task-level routing).",
    )
    target_modules: list[str] = Field(
        default_factory=lambda: list(LLAMA_LINEARS),
        description="nn.Linear layers to wrap: full module names, or name suffixes such as "
        "'q_proj' or 'self_attn.q_proj' (suffixes match only inside `within`).",
    )
    within: str | None = Field(
        r"(^|\.)language_model\.",
        description="Regular expression a module's full name must match for a suffix in "
        "target_modules to wrap it; the default keeps the vision tower and projector of LLaVA / "
        "Qwen-VL models out. None: anywhere. Full names in target_modules always match.",
    )
    load_balance_coef: float = Field(
        0.01,
        ge=0,
        description="Weight of the load-balancing loss: coef x its mean over layers (1 when "
        "balanced) joins the LM loss, divided like it under gradient accumulation.",
    )
    dispatch: Literal["auto", "sparse", "dense"] = Field(
        "auto",
        description="sparse: only the chosen experts run (gathered tokens); dense: every "
        "expert runs, then the gates zero the others (one large matmul); auto: sparse from "
        f"(num_experts - top_k) x rank >= {SPARSE_FROM} (bench/moe_lora.py: below that the "
        "gathers cost more than the matmuls they save).",
    )

    @model_validator(mode="after")
    def _top_k_within_experts(self) -> MoELoraConfig:
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) exceeds num_experts ({self.num_experts})")
        if not self.target_modules:
            raise ValueError("target_modules is empty; name at least one linear layer suffix")
        return self


class RoutingContext:
    """What every wrapped layer of one model shares: the masks of the current forward and the
    weight of the load-balancing gradient."""

    def __init__(self, aux_scale: float = 0.0) -> None:
        self.attention_mask: torch.Tensor | None = None
        self.prompt_mask: torch.Tensor | None = None  # (batch, seq): positions routing pools
        self.decoding = False  # a cached generation step after the prompt
        self.aux_scale = aux_scale  # d(total loss) / d(one layer's balance loss)


class _AuxLossGradient(torch.autograd.Function):
    """Identity on a layer's output whose backward also sends ``scale`` into its aux loss.

    The balance loss then trains the router without being summed into the returned loss, so no
    layer keeps a reference to it (which under activation checkpointing would keep every
    recomputed graph alive until the next step).
    """

    @staticmethod
    def forward(ctx, output: torch.Tensor, aux: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(aux)
        ctx.scale = scale
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        (aux,) = ctx.saved_tensors
        return grad, torch.full_like(aux, ctx.scale), None


class MoELoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus a routed mixture of LoRA experts."""

    def __init__(self, base: nn.Linear, cfg: MoELoraConfig, context: RoutingContext) -> None:
        super().__init__()
        self.base = base
        self.cfg = cfg
        self.context = context
        self.scaling = cfg.alpha / cfg.rank
        experts, rank = cfg.num_experts, cfg.rank
        device = base.weight.device
        self.router = nn.Linear(base.in_features, experts, bias=False, device=device)
        nn.init.normal_(self.router.weight, std=1.0 / math.sqrt(base.in_features))
        self.lora_A = nn.Parameter(torch.empty(experts, rank, base.in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(experts, base.out_features, rank, device=device))
        for expert in self.lora_A:
            nn.init.kaiming_uniform_(expert, a=math.sqrt(5))
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.last_balance: torch.Tensor | None = None  # detached, for logging only
        self._prompt_gates: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        """The base weight, for code that inspects ``layer.weight`` (dtype, device, shape)."""
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def _token_mask(self, x: torch.Tensor, prompt: bool = False) -> torch.Tensor | None:
        """The (batch, seq) padding (or prompt) mask when it matches this layer's input."""
        mask = self.context.prompt_mask if prompt else self.context.attention_mask
        if mask is None or x.dim() != 3 or mask.shape != x.shape[:2]:
            return None
        return mask.to(device=x.device, dtype=torch.float32)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense gates (``..., experts``; zero outside the top-k) and this layer's aux loss.

        The router matmul runs in the input's dtype (no float32 copy of the activations is kept
        for backward); softmax, top-k and the loss run in float32.
        """
        sequence = self.cfg.routing == "sequence" and x.dim() == 3
        mask = self._token_mask(x, prompt=sequence)
        weight = self.router.weight.to(x.dtype)
        prompt = self._prompt_gates
        if sequence and self.context.decoding and prompt is not None and len(prompt) == len(x):
            return prompt, x.new_zeros((), dtype=torch.float32)
        if sequence:
            if mask is None:
                pooled = x.mean(dim=1, keepdim=True)
                weights = None
            else:
                counts = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
                pooled = torch.einsum("btd,bt->bd", x, mask.to(x.dtype)) / counts.to(x.dtype)
                pooled = pooled[:, None, :]
                weights = (mask.sum(dim=1) > 0).float()[:, None]
            logits = nn.functional.linear(pooled, weight)
        else:
            logits = nn.functional.linear(x, weight)
            weights = mask
        probs = logits.float().softmax(dim=-1)
        top_values, top_index = probs.topk(self.cfg.top_k, dim=-1)
        chosen = torch.zeros_like(probs).scatter(-1, top_index, 1.0)
        gates = chosen * probs / top_values.sum(dim=-1, keepdim=True)
        if sequence:
            self._prompt_gates = gates.detach()
        return gates, self._balance_loss(probs, chosen, weights)

    def _balance_loss(
        self, probs: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        experts = probs.shape[-1]
        probs = probs.reshape(-1, experts)
        chosen = chosen.reshape(-1, experts)
        if weights is None:
            weights = probs.new_ones(probs.shape[0])
        weights = weights.reshape(-1, 1)
        total = weights.sum().clamp(min=1.0)
        dispatch_share = (chosen * weights).sum(0) / (total * self.cfg.top_k)
        mean_prob = (probs * weights).sum(0) / total
        return experts * (dispatch_share * mean_prob).sum()

    @property
    def sparse(self) -> bool:
        """Whether only the chosen experts run (:attr:`MoELoraConfig.dispatch`)."""
        if self.cfg.dispatch == "auto":
            return (self.cfg.num_experts - self.cfg.top_k) * self.cfg.rank >= SPARSE_FROM
        return self.cfg.dispatch == "sparse"

    def experts(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """``sum_e gate_e * B_e A_e x``, by the layer's dispatch."""
        if self.sparse:
            return self.sparse_experts(x, gates)
        return self.dense_experts(x, gates)

    def dense_experts(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Every expert on every token as two stacked matmuls, the gates zeroing all but the
        top-k: the most compute, but one large matmul each way (fast for small experts)."""
        dtype = x.dtype
        low = torch.einsum("...i,eri->...er", self.dropout(x), self.lora_A.to(dtype))
        low = low * gates.to(dtype)[..., None]
        return torch.einsum("...er,eor->...o", low, self.lora_B.to(dtype))

    def sparse_experts(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """``sum_e gate_e * B_e A_e x`` over the chosen experts only (sparse dispatch).

        The (token, expert) pairs of the top-k are sorted by expert, so each expert multiplies
        one contiguous block of the gathered tokens; the results are put back in token order
        and each token's k results summed. Experts run in the input's dtype (as under
        autocast); their float32 parameters get float32 gradients through the casts.
        """
        dtype, width, k = x.dtype, x.shape[-1], self.cfg.top_k
        rows = self.dropout(x).reshape(-1, width)
        row_gates = gates.expand(*x.shape[:-1], gates.shape[-1]).reshape(-1, gates.shape[-1])
        weights, chosen = row_gates.topk(k, dim=-1)  # the nonzero gates, k per token
        experts = chosen.flatten()  # slot s = token * k + j
        order = experts.argsort(stable=True)
        gathered = rows.index_select(0, order // k)
        scales = weights.reshape(-1)[order].to(dtype)[:, None]  # gate, applied at rank r
        sizes = torch.bincount(experts, minlength=self.cfg.num_experts).tolist()
        # unbind: one backward for all experts (indexing each would zero-fill a full-size grad)
        down, up = self.lora_A.to(dtype).unbind(0), self.lora_B.to(dtype).unbind(0)
        outputs = [
            ((block @ down[expert].T) * scale) @ up[expert].T
            for expert, (block, scale) in enumerate(
                zip(gathered.split(sizes), scales.split(sizes), strict=True)
            )
            if block.shape[0]
        ]
        back = torch.empty_like(order)
        back[order] = torch.arange(order.numel(), device=order.device)
        slots = torch.cat(outputs).index_select(0, back)
        update = slots.reshape(rows.shape[0], k, self.base.out_features).sum(dim=1)
        return update.reshape(*x.shape[:-1], self.base.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        gates, balance = self.route(x)
        self.last_balance = balance.detach()
        out = out + (self.experts(x, gates) * self.scaling).to(out.dtype)
        if torch.is_grad_enabled() and balance.requires_grad:
            out = _AuxLossGradient.apply(out, balance, self.context.aux_scale)
        return out


def _matches(name: str, cfg: MoELoraConfig) -> bool:
    """A full module name always matches; suffixes match only inside ``within``."""
    if name in cfg.target_modules:
        return True
    if cfg.within is not None and not re.search(cfg.within, name):
        return False
    return any(name.endswith("." + t) for t in cfg.target_modules)


def moe_lora_layers(model: nn.Module) -> dict[str, MoELoraLinear]:
    """The wrapped layers of ``model`` by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, MoELoraLinear)}


def prompt_mask(attention_mask: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
    """Positions a sequence route pools: non-padding and, in training, before the first label.

    Labels of -100 mark what the model is not trained to write (system, question, image,
    padding); everything from the first supervised label on is the answer, which the route of a
    causal model must not see.
    """
    reference = labels if labels is not None else attention_mask
    keep = (
        torch.ones_like(reference, dtype=torch.bool)
        if attention_mask is None
        else attention_mask.bool()
    )
    if labels is not None:
        supervised = labels != -100
        length = labels.shape[1]
        first = torch.where(
            supervised.any(dim=1),
            supervised.int().argmax(dim=1),
            torch.full_like(labels[:, 0], length),
        )
        positions = torch.arange(length, device=labels.device)[None, :]
        keep = keep & (positions < first[:, None])
    return keep


def _capture_mask(context: RoutingContext, routing: str):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        context.attention_mask = (
            mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
        )
        labels = kwargs.get("labels")
        labels = labels if isinstance(labels, torch.Tensor) and labels.dim() == 2 else None
        context.prompt_mask = (
            prompt_mask(context.attention_mask, labels)
            if routing == "sequence" and (context.attention_mask is not None or labels is not None)
            else None
        )
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        seen = cache.get_seq_length() if hasattr(cache, "get_seq_length") else 0
        context.decoding = bool(seen)
        positions = kwargs.get("position_ids")
        packed = (
            routing == "sequence"
            and context.attention_mask is None
            and isinstance(positions, torch.Tensor)
            and positions.dim() == 2
            and bool((positions[:, 1:] < positions[:, :-1]).any())
        )
        if packed:
            raise RsgptError(
                "MoE-LoRA sequence routing cannot route packed rows (position_ids restart "
                "inside a row); turn packing off or use routing='token'"
            )

    return hook


def apply_moe_lora(model: nn.Module, cfg: MoELoraConfig) -> nn.Module:
    """Freeze ``model`` and wrap every targeted ``nn.Linear`` in a :class:`MoELoraLinear`.

    Registers the forward pre-hook that hands the padding mask to the routers and sets
    ``model.moe_lora_config``. Returns the same model object.
    """
    if moe_lora_layers(model):
        raise RsgptError("this model already carries MoE-LoRA layers; load a fresh base")
    targets = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(n, cfg)]
    if not targets:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise RsgptError(
            f"no nn.Linear matches target_modules={cfg.target_modules[:4]}"
            f"{' ...' if len(cfg.target_modules) > 4 else ''} within={cfg.within!r}; "
            f"linear layers look like: {', '.join(linears[:4]) or 'none'}"
        )
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    context = RoutingContext(aux_scale=cfg.load_balance_coef / len(targets))
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, MoELoraLinear(getattr(parent, child), cfg, context))
    model.register_forward_pre_hook(_capture_mask(context, cfg.routing), with_kwargs=True)
    model.moe_lora_config = cfg
    return model


def moe_aux_loss(model: nn.Module) -> torch.Tensor:
    """The load-balancing loss of the last forward: mean over layers, detached (1 = balanced).

    For logging: its gradient, ``load_balance_coef`` times this mean, already reaches the
    routers in the backward pass of the model's own loss (module docstring).
    """
    losses = [m.last_balance for m in moe_lora_layers(model).values() if m.last_balance is not None]
    if not losses:
        raise RsgptError("no MoE-LoRA forward has run yet (or the model has no MoE-LoRA layers)")
    return torch.stack([loss.float() for loss in losses]).mean()


def set_aux_loss_scale(model: nn.Module, accumulation_steps: int = 1) -> float:
    """Weight the balance gradient as ``coef * mean over layers / accumulation_steps``.

    The language-modelling loss of one micro-batch is divided by the accumulation steps (or by
    the items of the whole accumulated batch), so the balance loss, a mean per micro-batch, is
    divided the same way; the returned value is what one layer's balance loss is weighted by.
    """
    layers = moe_lora_layers(model)
    if not layers:
        raise RsgptError("the model carries no MoE-LoRA layers")
    first = next(iter(layers.values()))
    scale = first.cfg.load_balance_coef / len(layers) / max(1, accumulation_steps)
    first.context.aux_scale = scale
    return scale


def moe_lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the router and expert weights, keyed ``<module name>.<router.weight|lora_A|lora_B>``."""
    state: dict[str, torch.Tensor] = {}
    for name, layer in moe_lora_layers(model).items():
        state[f"{name}.router.weight"] = layer.router.weight
        state[f"{name}.lora_A"] = layer.lora_A
        state[f"{name}.lora_B"] = layer.lora_B
    return state


def save_moe_lora(model: nn.Module, out_dir: str | Path) -> Path:
    """Write the experts and routers (safetensors) and the config (JSON) to ``out_dir``."""
    from safetensors.torch import save_file

    cfg = getattr(model, "moe_lora_config", None)
    if cfg is None or not moe_lora_layers(model):
        raise RsgptError("the model carries no MoE-LoRA layers to save")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in moe_lora_state_dict(model).items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(json.dumps(cfg.model_dump(), indent=2) + "\n")
    return out


def load_moe_lora(model: nn.Module, out_dir: str | Path) -> nn.Module:
    """Wrap a fresh base ``model`` as the saved adapter was and load its experts and routers."""
    from safetensors.torch import load_file

    folder = Path(out_dir)
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise RsgptError(f"{folder} holds no MoE-LoRA adapter ({CONFIG_NAME} + {WEIGHTS_NAME})")
    cfg = MoELoraConfig.model_validate_json((folder / CONFIG_NAME).read_text())
    apply_moe_lora(model, cfg)
    saved = load_file(str(folder / WEIGHTS_NAME))
    expected = moe_lora_state_dict(model)
    missing, unexpected = set(expected) - set(saved), set(saved) - set(expected)
    if missing or unexpected:
        raise RsgptError(
            f"MoE-LoRA adapter in {folder} does not fit this model: "
            f"{len(missing)} layer weights missing (e.g. {sorted(missing)[:1]}), "
            f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[:1]})"
        )
    with torch.no_grad():
        for key, tensor in expected.items():
            if saved[key].shape != tensor.shape:
                raise RsgptError(
                    f"MoE-LoRA weight {key} has shape {tuple(saved[key].shape)} in {folder}, "
                    f"the model expects {tuple(tensor.shape)}"
                )
            tensor.copy_(saved[key])
    return model
