"""Token and dollar accounting from a dated price table (``prompts/llm/prices.yaml``).

Costs are computed from the usage the server reports; before a call, :func:`estimate_tokens`
gives a worst case (text at one token per UTF-8 byte, which no byte-level tokenizer exceeds, the
image by the vision tile formula, the output at ``max_tokens``) for the budget to reserve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import yaml

from rsgpt4v.errors import InputError
from rsgpt4v.jsonfiles import decode_utf8

MESSAGE_OVERHEAD_TOKENS = 8


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens and the image-token rule of one model."""

    input: float
    cached_input: float
    output: float
    image_base: int = 85
    image_per_tile: int = 170


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
        }


@dataclass(frozen=True)
class PriceTable:
    version: str
    batch_discount: float
    models: dict[str, ModelPrice]

    def price_of(self, model: str) -> ModelPrice | None:
        """The exact entry, else the longest listed prefix of the model name, else None."""
        if model in self.models:
            return self.models[model]
        prefixes = [name for name in self.models if model.startswith(name)]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float:
        """USD of one request (0 for a model without a price)."""
        price = self.price_of(model)
        if price is None:
            return 0.0
        uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
        dollars = (
            uncached * price.input
            + usage.cached_tokens * price.cached_input
            + usage.completion_tokens * price.output
        ) / 1e6
        return dollars * (self.batch_discount if batch else 1.0)


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The price table at path, or the bundled one."""
    if path is None:
        text = (files("rsgpt4v.prompts") / "llm" / "prices.yaml").read_text(encoding="utf-8")
    else:
        if not Path(path).is_file():
            raise InputError("price table not found", file=path)
        text = decode_utf8(Path(path).read_bytes(), path)
    try:
        data = yaml.safe_load(text) or {}
        models = {
            str(name): ModelPrice(
                input=float(entry["input"]),
                cached_input=float(entry.get("cached_input", entry["input"])),
                output=float(entry["output"]),
                image_base=int(entry.get("image", {}).get("base", 85)),
                image_per_tile=int(entry.get("image", {}).get("per_tile", 170)),
            )
            for name, entry in (data.get("models") or {}).items()
        }
    except (
        yaml.YAMLError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        RecursionError,
    ) as error:
        raise InputError(
            f"not a price table (models: NAME: {{input, output}} in USD per 1M tokens): {error}",
            file=path or "prices.yaml",
        ) from None
    return PriceTable(str(data.get("version", "")), float(data.get("batch_discount", 0.5)), models)


def image_tokens(width: int, height: int, detail: str, price: ModelPrice | None) -> int:
    """Input tokens of one image by the OpenAI vision tile formula.

    ``low``: the base cost. ``high``: fit within 2048 x 2048, shrink (never enlarge) so the short
    side is at most 768, then base + per_tile x the number of 512-px tiles.
    """
    base, per_tile = (price.image_base, price.image_per_tile) if price else (85, 170)
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return base + per_tile * math.ceil(w / 512) * math.ceil(h / 512)


def text_tokens_bound(text: str) -> int:
    """At most this many tokens (no tokenizer needed): every token of a byte-level BPE holds at
    least one byte. A per-character guess is no bound: CJK text and digits run denser."""
    return len(text.encode("utf-8"))


def estimate_tokens(messages: list[dict], image_tokens_each: int) -> int:
    """Upper estimate of a request's input tokens: text parts plus image parts."""
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        content = message["content"]
        if isinstance(content, str):
            total += text_tokens_bound(content)
            continue
        for part in content:
            if part["type"] == "text":
                total += text_tokens_bound(part["text"])
            else:
                total += image_tokens_each
    return total
