"""Counting: exact match and mean absolute error of the first number in each answer.

Numbers are read in digits or words (:func:`normalize.parse_number`). A prediction without a
number is wrong for exact match and counts as 0 in the MAE (so a model cannot lower its error by
not answering); how many there were is reported as ``unparsed``.
"""

from __future__ import annotations

from collections.abc import Iterable

from rsgpt4v.evaluate.normalize import parse_number


def count_scores(cases: Iterable[tuple[str, float]]) -> dict[str, object]:
    """``exact_match``, ``mae``, ``n`` and ``unparsed`` of (prediction text, true count) pairs."""
    n = exact = unparsed = 0
    error = 0.0
    for prediction, truth in cases:
        value = parse_number(prediction)
        n += 1
        if value is None:
            unparsed += 1
            value = 0.0
        exact += value == truth
        error += abs(value - truth)
    return {
        "exact_match": exact / n if n else None,
        "mae": error / n if n else None,
        "n": n,
        "unparsed": unparsed,
    }
