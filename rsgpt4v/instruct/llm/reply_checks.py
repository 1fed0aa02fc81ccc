"""The checks of a parsed reply against the record's labels (see :mod:`.passes`).

A reply is rejected, with the reason, when it writes an object reference other than exactly
``<ref:N>``, refers to an id the record does not have, writes coordinates, has a dialogue outside
3-5 turns, or says of a class what the labels do not show, as
:class:`rsgpt4v.label_facts.LabelFacts` decides for ``validate`` too: where the labels are
complete, it names (even to deny it) a class of the dataset's vocabulary that the record lacks,
unless the dataset's classes nest; it gives a number of a class (every number is read as a
total) other than the label count; or, for a class whose labels may miss instances, any number
but "at least" one no larger than the label count. Anything else it describes (land use, roads,
car parks, water, vegetation: what no label covers) is not checked.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from pydantic import BaseModel

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.instruct.llm.passes import RecordContext
from rsgpt4v.instruct.llm.replies import DialogueReply
from rsgpt4v.label_facts import LabelFacts, lower_bound_before
from rsgpt4v.schema import REF
from rsgpt4v.vocabulary import category_name

DIALOGUE_TURNS = (3, 5)
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
    text = "\n".join(texts)
    lowered = None if _FOLDS_TO_ASCII.intersection(text) else text.lower()
    facts = _label_facts(context)
    return _invented_class(text, lowered, facts, vocabulary) or _count_problem(
        text, lowered, facts, vocabulary
    )


def _label_facts(context: RecordContext) -> LabelFacts:
    """The record's :class:`LabelFacts` under the run's completeness.

    ``context.partial`` holds the labelled classes that completeness leaves partial; a class
    without a label is partial or not to no effect here, since every number read is a total.
    """
    partial = LabelCompleteness(context.partial)
    return LabelFacts(context.record.dataset, context.counts, context.complete, partial)


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


def _invented_class(
    text: str, lowered: str | None, facts: LabelFacts, vocabulary: tuple[str, ...]
) -> str | None:
    """Any name of a vocabulary class the labels do not show, negated or not."""
    absent = tuple(
        c
        for c in vocabulary
        if facts.invented((c,)) and any(_may_occur(f, lowered) for f in _plain_forms(c))
    )
    found = _classes_pattern(absent).search(text) if absent else None
    return f"names {found.group(0)!r}, a class the record does not have" if found else None


def _count_problem(
    text: str, lowered: str | None, facts: LabelFacts, vocabulary: tuple[str, ...]
) -> str | None:
    """The first number of a class (a total, or "at least" it) the labels do not vouch for."""
    for category in sorted(set(facts.counts) | set(vocabulary)):
        if not _may_occur(category_name(category).plural, lowered):
            continue
        for found in _count_pattern(category).finditer(text):
            said = found.group(1).lower()
            number = NUMBER_WORDS[said] if said in NUMBER_WORDS else int(said)
            bound = lower_bound_before(text, found.start())
            problem = facts.count_problem(
                (category,), number, total=True, lower_bound=bound is not None
            )
            if problem is not None:
                written = f"{bound} {found.group(0)}" if bound else found.group(0)
                return f"says {written!r} {problem}"
    return None


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
