"""``--dry-run``: every pass of the first record rendered, and the token and cost estimate of the
whole run, no call.

Nothing is read but the records: image token counts come from the records' image sizes and the
vision tile formula (crops, planned from the labels, at their sent size), and later passes are
sized as if the earlier replies took their whole ``max_tokens``. The later passes of the preview
are fed placeholder replies built from the labels (:func:`placeholder_local`,
:func:`placeholder_description`), marked as such, so what they would be sent can be read before
anything is paid for. Two figures are given: an upper bound (text and reply schema at one token
per UTF-8 byte, every reply at ``max_tokens``; what ``--budget-usd`` reserves) and a typical one
(4 characters per token, replies at half their ``max_tokens``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from rsgpt4v.instruct.attributes import object_facts
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
from rsgpt4v.instruct.llm.record_runs import shard_records
from rsgpt4v.instruct.llm.replies import LocalReply, ObjectNote, Relation
from rsgpt4v.instruct.llm.selection import ObjectBudget, View
from rsgpt4v.instruct.llm.settings import LlmSettings
from rsgpt4v.schema import Record, read_jsonl
from rsgpt4v.vocabulary import category_name, dataset_vocabulary

PLACEHOLDER = "[placeholder]"  # marks every text of a placeholder reply
PLACEHOLDER_RELATIONS = 5  # relations of the placeholder local reply


@dataclass
class Plan:
    model: str
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (heading, rendered request)
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
        lines = []
        for heading, prompt in self.prompts or [("no request", "(no record to prompt for)")]:
            lines += [f"--- {heading} ---", prompt]
        return [
            *lines,
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
    budget = ObjectBudget.of(settings)
    vocabulary = dataset_vocabulary(records_path)
    system = system_text()
    plan = Plan(settings.model, priced=price is not None, prices_version=prices.version)
    batch = settings.batch
    for record in shard_records(read_jsonl(records_path, Record), settings.shard):
        plan.records += 1
        view = View.of(record.image, settings.detail, settings.max_side)
        labelling = settings.completeness.get(record.dataset)
        context = RecordContext.of(record, object_facts(record), view, budget, labelling)
        known = vocabulary.get(record.dataset, ())
        width, height = _fit(record.image.width, record.image.height, side)
        image = image_tokens(width, height, settings.detail, price)
        crops = [c.sent_size(view.crop_scale) for c in context.selection.crops]
        crop_tokens = sum(image_tokens(w, h, "low", price) for w, h in crops)
        if not plan.prompts:
            plan.prompts = preview(context, settings, known, (width, height, image))
        earlier_tokens = 0
        for name in settings.passes:
            spec = PASSES[name]
            text = user_text(spec, context, Earlier(), known)
            pictures = image + (crop_tokens if spec.shows_crops else 0)
            fixed = 2 * MESSAGE_OVERHEAD_TOKENS + pictures
            chars = len(system) + len(text)
            max_tokens = spec.max_tokens(len(context.listed))
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
    return plan


def preview(
    context: RecordContext,
    settings: LlmSettings,
    vocabulary: tuple[str, ...],
    scene: tuple[int, int, int],
) -> list[tuple[str, str]]:
    """Each pass of one record as it would be sent, the later ones fed placeholder replies of
    the earlier ones (as a run feeds them the accepted replies); images as placeholder lines."""
    record = context.record
    width, height, tokens = scene
    view = View.of(record.image, settings.detail, settings.max_side)
    scene_line = (
        f"[image 1: {record.image.path}, detail {settings.detail}, sent at most {width} x "
        f"{height} px, ~{tokens} tokens]"
    )
    earlier = Earlier()
    fed: list[str] = []
    prompts = []
    for name in settings.passes:
        spec = PASSES[name]
        images = [scene_line]
        if spec.shows_crops:
            for crop in context.selection.crops:
                w, h = crop.sent_size(view.crop_scale)
                x, y, cw, ch = crop.window
                images.append(
                    f"[image {crop.number + 1}: crop {crop.number} of {record.image.path}, "
                    f"x {x}-{x + cw}, y {y}-{y + ch} px at full resolution, detail low, "
                    f"{w} x {h} px, ~{image_tokens(w, h, 'low', None)} tokens]"
                )
        system = system_text() if not prompts else "(the same system message)"
        text = user_text(spec, context, earlier, vocabulary)
        heading = f"{name} pass of {record.id} (rendered)"
        if fed:
            heading += (
                f"; fed a PLACEHOLDER {' and a PLACEHOLDER '.join(fed)} built from the labels "
                "(no model wrote it; a run feeds the accepted reply)"
            )
        prompts.append((heading, "\n".join([f"[system]\n{system}\n[user]\n{text}", *images])))
        if name == "local":
            earlier.local = placeholder_local(context)
            fed.append("local reply")
        elif name == "global":
            earlier.description = placeholder_description(context)
            fed.append("global reply")
    return prompts


def placeholder_local(context: RecordContext) -> LocalReply:
    """A local reply made of the label facts of the listed objects, marked as a placeholder."""
    notes = []
    for f in context.listed:
        name = category_name(f.category).singular
        where = f" in the {f.position} of the scene" if f.position else ""
        attributes = [a for a in (f.size_class, f.orientation) if a]
        notes.append(
            ObjectNote(
                id=f.id, attributes=attributes, description=f"{PLACEHOLDER} A {name}{where}."
            )
        )
    relations = [
        Relation(subject=a.id, predicate="near", object=b.id)
        for a, b in list(pairwise(context.listed))[:PLACEHOLDER_RELATIONS]
    ]
    return LocalReply(objects=notes, relations=relations)


def placeholder_description(context: RecordContext) -> str:
    """A global reply made of the class counts and the first listed objects, marked."""
    counts = ", ".join(f"{n} x {c}" for c, n in sorted(context.counts.items())) or "no object"
    refs = ", ".join(f"<ref:{f.id}>" for f in context.listed[:3])
    listed = f"; the first listed are {refs}" if refs else ""
    return f"{PLACEHOLDER} A scene whose labels hold {counts}{listed}."


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
