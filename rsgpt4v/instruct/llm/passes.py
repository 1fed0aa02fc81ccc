"""The three passes as pure functions: the prompt of a record, and the parse and check of a reply.

- local: the image and the table of labelled objects (id, class, box and the rule-derived facts
  of :mod:`rsgpt4v.instruct.attributes`) → per-object attributes and relations between ids;
- global: the image and the accepted local notes → one detailed description with ``<ref:N>``;
- multi_turn: the image, the local notes and the description → a 3-5 turn reasoning dialogue.

The labels are given to the model so it describes rather than guesses, and are then used to check
its reply: a reply that refers to an object other than as ``<ref:N>`` or to an id the record does
not have, writes coordinates, contradicts a label count or names a class absent from the record
is rejected, with the reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from importlib.resources import files
from typing import Any

import jinja2
from pydantic import BaseModel, ValidationError

from rsgpt4v.errors import RsgptError
from rsgpt4v.instruct.attributes import ObjectFacts
from rsgpt4v.instruct.llm.images import RenderedImage
from rsgpt4v.instruct.llm.pricing import text_tokens_bound
from rsgpt4v.instruct.llm.replies import AnswerReply, DialogueReply, GlobalReply, LocalReply
from rsgpt4v.instruct.phrasing import category_name
from rsgpt4v.schema import REF, Record

MAX_TABLE_OBJECTS = 60  # objects listed in the local prompt; counts always cover all of them
DIALOGUE_TURNS = (3, 5)
_VERSION = re.compile(r"\{#-?\s*version:\s*(\S+)\s*-?#\}")
# Any reference the model may have meant, whatever its case or spacing; only the exact form
# (the id as exports look it up, no leading zero) is kept: anything else would reach the
# training files verbatim, as text no exporter turns into a box.
_REF_LIKE = re.compile(r"<\s*ref", re.IGNORECASE)
_REF_EXACT = re.compile(r"<ref:(?:0|[1-9]\d*)>")
_COORDINATES = re.compile(
    r"\[\s*-?\d+(?:\.\d+)?\s*(?:,\s*-?\d+(?:\.\d+)?\s*)+\]|\(\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*\)"
)
NUMBER_WORDS = {
    w: n
    for n, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}


@dataclass(frozen=True)
class PassSpec:
    """One pass: its template, its reply model and the most tokens its reply may take."""

    name: str
    template: str
    reply: type[BaseModel]
    base_tokens: int
    tokens_per_object: int = 0

    def max_tokens(self, objects: int) -> int:
        listed = min(objects, MAX_TABLE_OBJECTS)
        return min(self.base_tokens + self.tokens_per_object * listed, 8000)


PASSES: dict[str, PassSpec] = {
    "local": PassSpec("local", "local.j2", LocalReply, 400, 90),
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
    """A record with its object facts and class counts, as the prompts and checks need them."""

    record: Record
    facts: list[ObjectFacts]
    complete: bool
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, record: Record, facts: list[ObjectFacts]) -> RecordContext:
        from rsgpt4v.instruct.rules.common import labels_are_complete

        counts = Counter(o.category for o in record.objects)
        return cls(record, facts, labels_are_complete(record), counts)

    @cached_property
    def ids(self) -> set[int]:
        return {o.id for o in self.record.objects}

    @cached_property
    def rows(self) -> list[str]:
        """The object table of the prompts (computed once for the record's passes)."""
        return [table_row(f) for f in self.facts[:MAX_TABLE_OBJECTS]]


def table_row(facts: ObjectFacts) -> str:
    """One object as a compact JSON row: the facts that are known, rounded for reading."""
    row: dict[str, Any] = {"id": facts.id, "category": facts.category}
    row["box"] = [round(v) for v in facts.bbox]
    for name in ("position", "size_class", "orientation", "colour"):
        value = getattr(facts, name)
        if value is not None:
            row[name] = value
    for name in ("length_m", "width_m", "area_m2"):
        value = getattr(facts, name)
        if value is not None:
            row[name] = round(value, 1)
    if facts.truncated:
        row["truncated"] = True
    if facts.difficult:
        row["difficult"] = True
    return json.dumps(row, separators=(",", ":"))


def user_text(spec: PassSpec, context: RecordContext, earlier: Earlier, **extra: Any) -> str:
    """The rendered user prompt of a pass (the text part; the image is appended as a part)."""
    record = context.record
    counts = ", ".join(f"{c} {n}" for c, n in sorted(context.counts.items())) or "none"
    values = {
        "image": record.image,
        "dataset": record.dataset,
        "counts": counts,
        "complete": context.complete,
        "rows": context.rows,
        "omitted": max(len(context.facts) - MAX_TABLE_OBJECTS, 0),
        "local_json": earlier.local.model_dump_json() if earlier.local else "{}",
        "description": earlier.description,
    }
    return _environment().get_template(spec.template).render(values | extra).strip()


def build_messages(
    spec: PassSpec,
    context: RecordContext,
    earlier: Earlier,
    image: RenderedImage | None,
    **extra: Any,
) -> list[dict]:
    """Chat messages of a pass: static system text first (prompt caching), then text, then image."""
    content: list[dict] = [{"type": "text", "text": user_text(spec, context, earlier, **extra)}]
    if image is not None:
        content.append(image.content_part())
    return [{"role": "system", "content": system_text()}, {"role": "user", "content": content}]


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


def check(reply: BaseModel, context: RecordContext, vocabulary: tuple[str, ...]) -> str | None:
    """Why a parsed reply is rejected, or None when it agrees with the record's labels."""
    texts = reply.texts()  # type: ignore[attr-defined]
    for text in texts:
        malformed = malformed_ref(text)
        if malformed is not None:
            return (
                f"malformed object reference {malformed!r}: objects are written <ref:N>, "
                "N an id of the table"
            )
    known = context.ids
    ids = list(reply.ids()) + [int(n) for t in texts for n in REF.findall(t)]  # type: ignore[attr-defined]
    unknown = sorted({i for i in ids if i not in known})
    if unknown:
        return f"refers to object id {unknown[0]}, which the record does not have"
    for text in texts:
        if _COORDINATES.search(text):
            return f"writes coordinates: {_COORDINATES.search(text).group(0)!r}"
    if isinstance(reply, DialogueReply) and not (
        DIALOGUE_TURNS[0] <= len(reply.turns) <= DIALOGUE_TURNS[1]
    ):
        return (
            f"dialogue has {len(reply.turns)} turns; {DIALOGUE_TURNS[0]}-{DIALOGUE_TURNS[1]} asked"
        )
    if not context.complete:
        return None  # counts and absences are facts only when every object is labelled
    text = "\n".join(texts)
    lowered = None if _FOLDS_TO_ASCII.intersection(text) else text.lower()
    absent = tuple(
        c
        for c in vocabulary
        if c not in context.counts and any(_may_occur(f, lowered) for f in _plain_forms(c))
    )
    found = _classes_pattern(absent).search(text) if absent else None
    if found:
        return f"names {found.group(0)!r}, a class the record does not have"
    for category, count in context.counts.items():
        if not _may_occur(category_name(category).plural, lowered):
            continue
        for found in _count_pattern(category).finditer(text):
            said = found.group(1).lower()
            number = NUMBER_WORDS.get(said, int(said) if said.isdigit() else None)
            if number is not None and number != count:
                return f"says {found.group(0)!r} but the labels have {count} {category}"
    return None


def malformed_ref(text: str) -> str | None:
    """The first ``<ref`` of the text (any case) that is not exactly ``<ref:N>``, as written."""
    if "<" not in text:
        return None
    for found in _REF_LIKE.finditer(text):
        if _REF_EXACT.match(text, found.start()) is None:
            end = text.find(">", found.start())
            cut = found.start() + 24 if end < 0 else min(end + 1, found.start() + 24)
            following = text.find("<", found.end())
            if following >= 0:
                cut = min(cut, following)
            return text[found.start() : cut].strip()
    return None


# The characters that re.IGNORECASE matches to an ASCII letter (dotless i, long s, capital I with
# dot, Kelvin sign). In a text without them, an ASCII class name can match only where the
# lower-cased text holds it: a substring test rules most of the patterns out before they run
# (the regular expressions cost most of a reply's check).
_FOLDS_TO_ASCII = frozenset("\u0131\u017f\u0130\u212a")


def _may_occur(form: str, lowered: str | None) -> bool:
    """False only when ``form`` cannot match case-insensitively in the text ``lowered`` is of
    (``lowered`` None: the text holds one of _FOLDS_TO_ASCII, so anything may)."""
    return lowered is None or not form.isascii() or form.lower() in lowered


@cache
def _plain_forms(category: str) -> tuple[str, ...]:
    name = category_name(category)
    raw = category.lower()
    forms = {raw, raw.replace("-", " ").replace("_", " "), name.singular, name.plural}
    return tuple(f for f in forms if f)


def _forms(category: str) -> tuple[str, ...]:
    return tuple(re.escape(f) for f in _plain_forms(category))


@lru_cache(maxsize=512)
def _classes_pattern(categories: tuple[str, ...]) -> re.Pattern[str]:
    """Any name of any of the classes, as a whole word (one pass over the text)."""
    forms = sorted({f for c in categories for f in _forms(c)}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(forms) + r")\b", re.IGNORECASE)


@cache
def _count_pattern(category: str) -> re.Pattern[str]:
    """``<number> [one word] <plural class>`` with a number of 2 or more (a stated total)."""
    plural = re.escape(category_name(category).plural)
    number = r"\d+|" + "|".join(w for w, n in NUMBER_WORDS.items() if n >= 2)
    return re.compile(rf"\b({number})\s+(?:[a-z-]+\s+)?{plural}\b", re.IGNORECASE)
