"""``--dry-run``: one rendered prompt and the token and cost estimate of the whole run, no call.

Nothing is read but the records: image token counts come from the records' image sizes and the
vision tile formula, and later passes are sized as if the earlier replies took their whole
``max_tokens``. Two figures are given: an upper bound (text and reply schema at one token per
UTF-8 byte, every reply at ``max_tokens``; what ``--budget-usd`` reserves) and a typical one
(4 characters per token, replies at half their ``max_tokens``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.instruct.attributes import object_facts
from rsgpt4v.instruct.llm.generate import shard_records
from rsgpt4v.instruct.llm.images import render_side
from rsgpt4v.instruct.llm.passes import (
    PASSES,
    Earlier,
    RecordContext,
    schema_tokens_bound,
    system_text,
    user_text,
)
from rsgpt4v.instruct.llm.pricing import (
    MESSAGE_OVERHEAD_TOKENS,
    Usage,
    image_tokens,
    load_prices,
    text_tokens_bound,
)
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.schema import Record, read_jsonl


@dataclass
class Plan:
    model: str
    prompt: str  # the first request, rendered (the image as a placeholder line)
    records: int = 0
    requests: int = 0
    input_tokens_bound: int = 0
    output_tokens_bound: int = 0
    input_tokens_typical: int = 0
    output_tokens_typical: int = 0
    cost_bound_usd: float = 0.0
    cost_typical_usd: float = 0.0
    priced: bool = True
    prices_version: str = ""

    def lines(self) -> list[str]:
        """The plan as printed by ``--dry-run``."""
        price = "" if self.priced else f" (no price for {self.model}: add it with --prices)"
        return [
            "--- first request (rendered) ---",
            self.prompt,
            "--- estimate ---",
            f"{self.records} records, {self.requests} requests to {self.model}",
            f"input tokens: ~{self.input_tokens_typical} typical, at most "
            f"{self.input_tokens_bound}",
            f"output tokens: ~{self.output_tokens_typical} typical, at most "
            f"{self.output_tokens_bound}",
            f"cost: ~${self.cost_typical_usd:.4f} typical, at most ${self.cost_bound_usd:.4f}"
            f"{price} (prices {self.prices_version}; cached replies cost nothing)",
            "dry run: no request was sent",
        ]


def plan_run(records_path: str | Path, settings: LlmSettings) -> Plan:
    prices = load_prices(settings.prices)
    price = prices.price_of(settings.model)
    side = render_side(settings.detail, settings.max_side)
    system = system_text()
    plan = Plan(settings.model, "", priced=price is not None, prices_version=prices.version)
    batch = settings.batch
    for record in shard_records(read_jsonl(records_path, Record), settings.shard):
        plan.records += 1
        context = RecordContext.of(record, object_facts(record))
        width, height = _fit(record.image.width, record.image.height, side)
        image = image_tokens(width, height, settings.detail, price)
        earlier_tokens = 0
        for name in settings.passes:
            spec = PASSES[name]
            text = user_text(spec, context, Earlier())
            if not plan.prompt:
                plan.prompt = (
                    f"[system]\n{system}\n[user]\n{text}\n[image: {record.image.path}, detail "
                    f"{settings.detail}, sent at most {width} x {height} px, ~{image} tokens]"
                )
            fixed = 2 * MESSAGE_OVERHEAD_TOKENS + image
            chars = len(system) + len(text)
            max_tokens = spec.max_tokens(len(record.objects))
            bound_in = (
                fixed
                + text_tokens_bound(system + text)
                + schema_tokens_bound(spec)
                + earlier_tokens
            )
            typical_in = fixed + math.ceil(chars / 4) + earlier_tokens // 2
            plan.requests += 1
            plan.input_tokens_bound += bound_in
            plan.output_tokens_bound += max_tokens
            plan.input_tokens_typical += typical_in
            plan.output_tokens_typical += max_tokens // 2
            plan.cost_bound_usd += prices.cost(
                settings.model, Usage(bound_in, max_tokens), batch=batch
            )
            plan.cost_typical_usd += prices.cost(
                settings.model, Usage(typical_in, max_tokens // 2), batch=batch
            )
            earlier_tokens += max_tokens
    if not plan.prompt:
        plan.prompt = "(no record to prompt for)"
    return plan


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
