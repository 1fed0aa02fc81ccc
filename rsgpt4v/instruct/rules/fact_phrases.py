"""How local facts read in a sentence: shared by the local, relation, dialogue, description rules.

Words come from ``prompts/rules/fact_words.yaml``; numbers are rounded by the steps below, so an
answer's "about 38 m" is within half a step of the value computed from the record. Instructions
built here take their regions from the ``<ref:N>`` placeholders in their text, so every
referenced id has its box and no box goes unreferenced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files

import yaml

from rsgpt4v.instruct.answerability import MAX_COUNT
from rsgpt4v.instruct.attributes import ObjectFacts
from rsgpt4v.instruct.rules.common import Draft
from rsgpt4v.instruct.rules.regions import indefinite_article
from rsgpt4v.instruct.templates import fill_template
from rsgpt4v.schema import REF, Record
from rsgpt4v.vocabulary import category_name

# (values below this bound, are rounded to this step)
METRE_STEPS = ((10.0, 0.1), (1000.0, 1.0), (math.inf, 10.0))
AREA_STEPS = ((100.0, 1.0), (10_000.0, 10.0), (math.inf, 100.0))
DENSITY_STEPS = ((10.0, 0.1), (math.inf, 1.0))
SIZE_WORDS_IN_NAMES = ("tiny", "small", "medium", "large", "big")


@cache
def fact_words() -> dict[str, dict[str, str]]:
    """The phrase of each fact value (``position``, ``size``, ``orientation``, ``row``, …)."""
    resource = files("rsgpt4v.prompts") / "rules" / "fact_words.yaml"
    return yaml.safe_load(resource.read_text(encoding="utf-8"))


def approx(value: float, steps: Iterable[tuple[float, float]] = METRE_STEPS) -> str:
    """``value`` rounded to the step of its magnitude, with thousands separators: ``1,250``."""
    for bound, step in steps:
        if value < bound:
            return format(round(value / step) * step, _number_format(step))
    raise ValueError(f"no rounding step for {value}")


@cache
def _number_format(step: float) -> str:
    """The format of a number rounded to ``step``: thousands separators, the step's decimals."""
    return f",.{max(0, -math.floor(math.log10(step)))}f"


def ref(fact: ObjectFacts) -> str:
    return f"<ref:{fact.id}>"


def join_fact_refs(facts: Iterable[ObjectFacts]) -> str:
    """``<ref:0>``, ``<ref:0> and <ref:3>``, ``<ref:0>, <ref:2> and <ref:3>``."""
    refs = [ref(f) for f in facts]
    return refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1]


def singular(fact: ObjectFacts) -> str:
    return category_name(fact.category).singular


def counted_noun(count: int, category: str) -> str:
    """``1 plane``, ``3 ships``."""
    name = category_name(category)
    return f"{count} {name.singular if count == 1 else name.plural}"


def stated_count(count: int, form: str | None) -> str | None:
    """How a count may be written: ``12`` (exact), ``at least 12`` (labels may miss some), or
    None (not countable at the model's input: no number at all)."""
    if form == "exact":
        return str(count)
    if form == "at_least":
        return f"at least {count}"
    return None


def class_amount(count: int, category: str, form: str | None) -> str | None:
    """A class named with what may be said of its count (``ClassFacts.count_form``).

    ``12 buses`` (exact), ``at least 12 buses`` (partial labels), and for classes that cannot be
    counted at the model's input no number: ``many buses`` above ``MAX_COUNT`` objects, ``some
    buses`` otherwise, and None for a single object too small to be seen (it is not mentioned).
    """
    name = category_name(category)
    if form is not None:
        return f"{stated_count(count, form)} {name.singular if count == 1 else name.plural}"
    if count > MAX_COUNT:
        return f"many {name.plural}"
    return f"some {name.plural}" if count > 1 else None


def join_words(parts: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def side_words(side: str, north_up: bool) -> str:
    """Where one object lies seen from another (``layout.side_of``): ``to its north-east`` on
    north-up images, ``above it and to its right`` on others."""
    return fact_words()["from_object"]["compass" if north_up else "screen"][side]


def sentence(text: str) -> str:
    """Text with its first letter capitalised (answers may open with a lower-case template)."""
    return text[:1].upper() + text[1:]


def describe_object(fact: ObjectFacts, *, with_ref: bool = True) -> str:
    """Noun phrase plus details: ``a large white plane <ref:2> oriented …, about 38 m long``.

    Only the facts that hold are used: size class, colour, class, orientation, grid position,
    and the real length (oriented box) or box extent (no polygon) when the GSD gives metres.
    The size class is left out for classes whose name starts with a size (``small vehicle``).
    """
    words = fact_words()
    name = singular(fact)
    # "a small small vehicle" reads wrong: classes named by a size keep their own
    sized_name = name.split(" ", 1)[0] in SIZE_WORDS_IN_NAMES
    adjectives = [] if sized_name else [words["size"][fact.size_class]]
    if fact.colour is not None:
        adjectives.append(fact.colour)
    noun = " ".join([*adjectives, name])
    parts = [f"{indefinite_article(noun)} {noun}" + (f" {ref(fact)}" if with_ref else "")]
    if fact.orientation is not None:
        parts.append(words["orientation"][fact.orientation])
    if fact.position is not None:
        parts.append(words["position"][fact.position])
    text = " ".join(parts)
    if fact.length_m is not None:
        text += ", " + fill_template(words["details"]["length"], {"length": approx(fact.length_m)})
    elif fact.box_m is not None:
        width, height = (approx(v) for v in fact.box_m)
        extent = {"box_width": width, "box_height": height}
        text += ", " + fill_template(words["details"]["extent"], extent)
    return text


def draft_from_text(
    task: str, index: int, template: str, turns: list[tuple[str, str]], record: Record
) -> Draft:
    """A draft whose regions are exactly the objects its turns refer to, in the record's order."""
    if len(turns) == 1:
        text = turns[0][0] + turns[0][1]
    else:
        text = "\n".join(question + answer for question, answer in turns)  # as each turn alone
    refs = set(REF.findall(text))
    positions = _positions_by_ref(record)
    try:  # refs as ref() writes them, each of an object: the digits are the dictionary's keys
        found = [p for digits in refs for p in positions[digits]]
    except KeyError:  # a ref written otherwise (leading zeros) or of no object: compare numbers
        found = [p for i in {int(digits) for digits in refs} for p in positions.get(str(i), ())]
    found.sort()
    objects = record.objects
    return Draft(task, index, template, turns, [objects[p] for p in found])


_positions: tuple[Record, dict[str, list[int]]] | None = None


def _positions_by_ref(record: Record) -> dict[str, list[int]]:
    """Where each object id (as ``<ref:N>`` writes it) sits in the record's objects.

    Kept for the last record asked: its rules ask one after another.
    """
    global _positions
    if _positions is None or _positions[0] is not record:
        positions: dict[str, list[int]] = {}
        for position, obj in enumerate(record.objects):
            positions.setdefault(str(obj.id), []).append(position)
        _positions = (record, positions)
    return _positions[1]


def fill(template: str, values: Mapping[str, object]) -> str:
    """A template filled and capitalised as a sentence (:func:`sentence`, written out)."""
    text = fill_template(template, values)
    return text[:1].upper() + text[1:]
