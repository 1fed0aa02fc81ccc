"""VQA accuracy, overall and per question type, on normalised answers.

An answer is right when it matches one of the references after :mod:`normalize`, read the way
the reference is written:

- a reference starting with yes or no ("yes", "Yes, there are 2 planes.") compares the leading
  yes/no of the prediction;
- an area (question type ``area`` or ``<n>m2``) compares square metres, in RSVQA's bins when
  ``bin_areas``;
- a count (type ``count``/``counting`` or a bare number) compares the first number, in RSVQA's
  bins when ``bin_counts``;
- a closed-set reference (``rural``/``urban``) compares the first word of that set in the
  prediction;
- anything else compares the whole normalised text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rsgpt4v.evaluate.normalize import (
    area_bin,
    count_bin,
    normalize_answer,
    parse_area,
    parse_number,
    parse_yes_no,
)

COUNT_TYPES = frozenset({"count", "counting", "number"})
AREA_TYPES = frozenset({"area"})
CLOSED_SETS = (frozenset({"rural", "urban"}),)
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_AREA_TEXT = re.compile(r"\d+(?:\.\d+)?k?m2")
UNTYPED = "untyped"


@dataclass(frozen=True)
class VqaOptions:
    """How numbers are compared: exactly, or by RSVQA bin (LR counts, HR areas)."""

    bin_counts: bool = False
    bin_areas: bool = False


@dataclass(frozen=True)
class VqaCase:
    prediction: str
    references: Sequence[str]
    question_type: str | None = None


def answer_matches(
    prediction: str, reference: str, question_type: str | None, options: VqaOptions
) -> bool:
    """Whether ``prediction`` says what ``reference`` says (see the module docstring)."""
    ref = normalize_answer(reference)
    kind = (question_type or "").lower()
    said = parse_yes_no(reference)
    if said is not None:
        return parse_yes_no(prediction) == said
    if kind in AREA_TYPES or _AREA_TEXT.fullmatch(ref):
        return _numbers_match(
            parse_area(prediction), parse_area(reference), options.bin_areas, area_bin
        )
    if kind in COUNT_TYPES or _BARE_NUMBER.fullmatch(ref):
        return _numbers_match(
            parse_number(prediction), parse_number(reference), options.bin_counts, count_bin
        )
    for closed in CLOSED_SETS:
        if ref in closed:
            said = next((w for w in normalize_answer(prediction).split() if w in closed), None)
            return said == ref
    return normalize_answer(prediction) == ref


def _numbers_match(
    predicted: float | None, expected: float | None, binned: bool, to_bin: Callable[[float], str]
) -> bool:
    if predicted is None or expected is None:
        return False
    return to_bin(predicted) == to_bin(expected) if binned else predicted == expected


def is_correct(case: VqaCase, options: VqaOptions) -> bool:
    """Right when the prediction matches any of the references."""
    return any(
        answer_matches(case.prediction, r, case.question_type, options) for r in case.references
    )


def vqa_scores(cases: Iterable[VqaCase], options: VqaOptions | None = None) -> dict[str, object]:
    """``accuracy`` (overall), ``average_accuracy`` (mean of the per-type accuracies, RSVQA's AA),
    ``n`` and ``per_type`` {type: {accuracy, n}}; cases without a type count as ``untyped``."""
    options = options or VqaOptions()
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for case in cases:
        kind = case.question_type or UNTYPED
        total[kind] += 1
        right[kind] += is_correct(case, options)
    n = sum(total.values())
    per_type = {k: {"accuracy": right[k] / total[k], "n": total[k]} for k in sorted(total)}
    return {
        "accuracy": sum(right.values()) / n if n else None,
        "average_accuracy": (
            sum(v["accuracy"] for v in per_type.values()) / len(per_type) if per_type else None
        ),
        "n": n,
        "per_type": per_type,
    }
