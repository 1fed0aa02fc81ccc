"""Scene classification: accuracy, per-class precision / recall / F1 and macro F1.

A free-text prediction is mapped to a class first (:func:`predicted_class`): the class name that
appears earliest in the normalised text (the longest one when two start at the same word), or
the option a lone letter picks in a multiple-choice question ("B" or "B." with ``B. forest`` in
the question). Macro F1 averages over the classes of the references.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from rsgpt4v.evaluate.normalize import normalize_answer

_OPTION = re.compile(r"^\s*([A-Z])\.\s+(.+?)\s*$", re.MULTILINE)
_LETTER = re.compile(r"^\s*\(?([A-Za-z])\)?(?:[.):]|\s|$)")


def question_options(question: str) -> dict[str, str]:
    """The lettered options of a multiple-choice question (``A. airport`` lines)."""
    return {m.group(1): m.group(2) for m in _OPTION.finditer(question)}


def predicted_class(prediction: str, classes: Sequence[str], question: str = "") -> str | None:
    """The class a prediction names, or None when it names none of ``classes``."""
    text = f" {normalize_answer(prediction)} "
    found: list[tuple[int, int, str]] = []
    for name in classes:
        at = text.find(f" {normalize_answer(name)} ")
        if at >= 0:
            found.append((at, -len(name), name))
    if found:
        return min(found)[2]
    options = question_options(question)
    letter = _LETTER.match(prediction)
    if options and letter and letter.group(1).upper() in options:
        chosen = normalize_answer(options[letter.group(1).upper()])
        return next((c for c in classes if normalize_answer(c) == chosen), None)
    return None


def classification_scores(pairs: Iterable[tuple[str | None, str]]) -> dict[str, object]:
    """Scores of (predicted class or None, true class) pairs."""
    pairs = list(pairs)
    n = len(pairs)
    true_positive: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    actual: Counter[str] = Counter()
    for guess, truth in pairs:
        actual[truth] += 1
        if guess is not None:
            predicted[guess] += 1
        if guess == truth:
            true_positive[truth] += 1
    per_class = {}
    for name in sorted(actual):
        tp = true_positive[name]
        precision = tp / predicted[name] if predicted[name] else 0.0
        recall = tp / actual[name]
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "n": actual[name]}
    return {
        "accuracy": sum(true_positive.values()) / n if n else None,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / len(per_class)
        if per_class
        else None,
        "n": n,
        "unmatched": sum(1 for guess, _ in pairs if guess is None),
        "per_class": per_class,
    }
