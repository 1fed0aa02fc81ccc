"""The three passes as pure functions: the prompt of a record, and the parse of a reply.

- local: the image and the table of labelled objects (id, class, box and the rule-derived facts
  of :mod:`rsgpt4v.instruct.attributes`) → per-object attributes and relations between ids;
- global: the image and the accepted local notes → one detailed description with ``<ref:N>``;
- multi_turn: the image, the local notes and the description → a 3-5 turn reasoning dialogue.

The labels are given to the model so it describes rather than guesses, and are then used to check
its reply (:mod:`rsgpt4v.instruct.llm.reply_checks`): a reply that refers to an object other than
as ``<ref:N>`` or to an id the record does not have, writes coordinates, contradicts a label count
or names a class of the dataset that the record's (complete) labels lack is rejected, with the
reason. What the labels do not cover (land use, roads, car parks, water, vegetation) may be
described: the prompts say so and list the dataset's classes that may not be named
(:func:`absent_classes`), the same ones the check rejects.

Which objects the table lists, and which the local pass shows in crops, is
:mod:`rsgpt4v.instruct.llm.selection`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files
from typing import Any

import jinja2
from pydantic import BaseModel, ValidationError

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.errors import RsgptError
from rsgpt4v.instruct.attributes import ObjectFacts
from rsgpt4v.instruct.llm.images import RenderedImage
from rsgpt4v.instruct.llm.pricing import text_tokens_bound
from rsgpt4v.instruct.llm.replies import AnswerReply, DialogueReply, GlobalReply, LocalReply
from rsgpt4v.instruct.llm.selection import (
    MIN_APPEARANCE_PX,
    ObjectBudget,
    Selection,
    View,
    select,
    table_row,
)
from rsgpt4v.label_facts import labels_are_complete
from rsgpt4v.schema import Record
from rsgpt4v.vocabulary import category_name, declared_completeness

MAX_REPLY_TOKENS = 8000
_VERSION = re.compile(r"\{#-?\s*version:\s*(\S+)\s*-?#\}")


@dataclass(frozen=True)
class PassSpec:
    """One pass: its template, its reply model, the most tokens its reply may take, and whether
    it is sent the crops of small objects (the pass that asks for each object's appearance)."""

    name: str
    template: str
    reply: type[BaseModel]
    base_tokens: int
    tokens_per_object: int = 0
    shows_crops: bool = False

    def max_tokens(self, listed: int) -> int:
        """For a prompt listing ``listed`` objects."""
        return min(self.base_tokens + self.tokens_per_object * listed, MAX_REPLY_TOKENS)


PASSES: dict[str, PassSpec] = {
    "local": PassSpec("local", "local.j2", LocalReply, 400, 90, shows_crops=True),
    "global": PassSpec("global", "global.j2", GlobalReply, 900),
    "multi_turn": PassSpec("multi_turn", "multi_turn.j2", DialogueReply, 1200),
}
SINGLE_QUESTION = PassSpec("single_question", "single_question.j2", AnswerReply, 300)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rsgpt4v.prompts", "llm"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
        auto_reload=False,  # package data does not change during a run; no stat per render
    )


@cache
def template_version(name: str) -> str:
    """The ``{#- version: N -#}`` header of a template; templates without one are refused."""
    source = (files("rsgpt4v.prompts") / "llm" / name).read_text(encoding="utf-8")
    found = _VERSION.match(source)
    if found is None:
        raise RsgptError(f"prompt template prompts/llm/{name} has no '{{#- version: N -#}}' header")
    return found.group(1)


def prompt_version(spec: PassSpec) -> str:
    """``local@1+system@1``: changes whenever either template's version changes."""
    stem = spec.template.removesuffix(".j2")
    return f"{stem}@{template_version(spec.template)}+system@{template_version('system.j2')}"


def system_text() -> str:
    return _environment().get_template("system.j2").render().strip()


@dataclass
class Earlier:
    """What earlier passes of the same record produced (accepted replies only)."""

    local: LocalReply | None = None
    description: str | None = None


@dataclass(frozen=True)
class RecordContext:
    """A record with its object facts, class counts and the objects its prompts list (with the
    crops of the small ones), as the prompts and checks need them."""

    record: Record
    facts: list[ObjectFacts]
    complete: bool
    counts: Counter[str] = field(default_factory=Counter)
    selection: Selection = field(default_factory=lambda: Selection(()))
    # classes whose labels may miss instances (rsgpt4v.completeness): their counts are lower
    # bounds, said "at least N"
    partial: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        record: Record,
        facts: list[ObjectFacts],
        view: View | None = None,
        budget: ObjectBudget | None = None,
        labelling: LabelCompleteness | None = None,
    ) -> RecordContext:
        """``view``: how large the model sees the image (default: ``detail low``, full size
        sent); ``budget``: the objects listed and crops allowed (default :class:`ObjectBudget`);
        ``labelling``: which classes the dataset labels exhaustively (default: its converter's
        declaration, :mod:`rsgpt4v.completeness`)."""
        counts = Counter(o.category for o in record.objects)
        view = view or View.of(record.image)
        selection = select(facts, record.image, view, budget or ObjectBudget())
        complete = labels_are_complete(record)
        labelling = labelling or declared_completeness(record.dataset)
        partial = frozenset(c for c in counts if not (complete and labelling.exhaustive(c)))
        return cls(record, facts, complete, counts, selection, partial)

    @cached_property
    def ids(self) -> set[int]:
        return {o.id for o in self.record.objects}

    @property
    def listed(self) -> tuple[ObjectFacts, ...]:
        """The objects of the prompts' table, in table order."""
        return self.selection.listed

    @cached_property
    def rows(self) -> list[str]:
        """The object table of a pass shown the crops (computed once for the record's passes)."""
        return self._rows(True)

    @cached_property
    def rows_without_crops(self) -> list[str]:
        """The table of a pass not shown the crops: objects only they show are too small."""
        return self._rows(False) if self.selection.crops else self.rows

    def _rows(self, crops_shown: bool) -> list[str]:
        return [table_row(f, self.selection.row_flags(f.id, crops_shown)) for f in self.listed]


def absent_classes(context: RecordContext, vocabulary: tuple[str, ...]) -> list[str]:
    """Natural names of the dataset's classes the record's labels lack, when the labels are
    complete (what :func:`check` rejects); none when they are not."""
    if not context.complete:
        return []
    present = {category_name(c).singular for c in context.counts}
    names = {category_name(c).singular for c in vocabulary if c not in context.counts}
    return sorted(names - present)


def user_text(
    spec: PassSpec,
    context: RecordContext,
    earlier: Earlier,
    vocabulary: tuple[str, ...] = (),
    *,
    crops_shown: bool | None = None,
    **extra: Any,
) -> str:
    """The rendered user prompt of a pass (the text part; the images are appended as parts).
    ``crops_shown``: whether the crops are sent with it (default: the pass's ``shows_crops``)."""
    record = context.record
    counts = ", ".join(
        f"{c} {'at least ' if c in context.partial else ''}{n}"
        for c, n in sorted(context.counts.items())
    )
    counts = counts or "none"
    selection = context.selection
    crops_shown = spec.shows_crops if crops_shown is None else crops_shown
    rows = context.rows if crops_shown else context.rows_without_crops
    omitted = selection.omitted or Counter()
    values = {
        "image": record.image,
        "dataset": record.dataset,
        "counts": counts,
        "complete": context.complete,
        "absent": ", ".join(absent_classes(context, vocabulary)),
        "rows": rows,
        "omitted": sum(omitted.values()),
        "omitted_counts": ", ".join(f"{c} {n}" for c, n in sorted(omitted.items())),
        "crops": selection.crops if crops_shown else (),
        "too_small": any('"too_small":true' in row for row in rows),
        "min_px": MIN_APPEARANCE_PX,
        "local_json": earlier.local.model_dump_json() if earlier.local else "{}",
        "description": earlier.description,
    }
    return _environment().get_template(spec.template).render(values | extra).strip()


def build_messages(
    spec: PassSpec,
    context: RecordContext,
    earlier: Earlier,
    image: RenderedImage | None,
    *,
    crops: Sequence[RenderedImage] = (),
    vocabulary: tuple[str, ...] = (),
    **extra: Any,
) -> list[dict]:
    """Chat messages of a pass: static system text first (prompt caching), then text, then the
    scene image, then (passes that show them) the crops in their numbered order; a table whose
    crops are not given marks the objects they were for as too small instead.
    ``vocabulary``: the dataset's class strings (the prompt lists those the labels lack)."""
    sent = images_of(spec, context, image, crops)
    text = user_text(spec, context, earlier, vocabulary, crops_shown=len(sent) > 1, **extra)
    content: list[dict] = [{"type": "text", "text": text}]
    content += [picture.content_part() for picture in sent]
    return [{"role": "system", "content": system_text()}, {"role": "user", "content": content}]


def images_of(
    spec: PassSpec,
    context: RecordContext,
    image: RenderedImage | None,
    crops: Sequence[RenderedImage],
) -> list[RenderedImage]:
    """The images a pass's request carries, in the order of its image parts: the scene, then
    the crops when the pass shows them and every crop of the record's plan is given."""
    if image is None:
        return []
    if spec.shows_crops and crops and len(crops) == len(context.selection.crops):
        return [image, *crops]
    return [image]


@cache
def reply_schema(reply: type[BaseModel]) -> dict:
    """The JSON schema of a reply model (built once: pydantic builds it slowly)."""
    return reply.model_json_schema()


def response_format(spec: PassSpec, mode: str) -> dict:
    """``json_schema`` (strict, from the reply model) or the ``json_object`` fallback."""
    if mode == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": f"{spec.name}_reply",
            "schema": reply_schema(spec.reply),
            "strict": True,
        },
    }


@cache
def schema_tokens_bound(spec: PassSpec) -> int:
    """Prompt tokens the reply schema may add: servers put a json_schema into the prompt."""
    return text_tokens_bound(json.dumps(response_format(spec, "json_schema")))


class ParseError(Exception):
    """A reply that is not the JSON the pass asked for; the message says why."""


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse(spec: PassSpec, text: str | None) -> BaseModel:
    """The reply model of a pass from the reply text; code fences and chatter around the object
    are tolerated (no model is asked to fix its JSON)."""
    if not text or not text.strip():
        raise ParseError("empty reply")
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise ParseError(f"not JSON: {error}") from None
        try:
            data = json.loads(body[start : end + 1])
        except json.JSONDecodeError:
            raise ParseError(f"not JSON: {error}") from None
    try:
        return spec.reply.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise ParseError(f"not a {spec.reply.__name__}: {where}: {first['msg']}") from None
