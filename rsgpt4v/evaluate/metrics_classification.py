"""Scene classification: accuracy, per-class precision / recall / F1 and macro F1.

A free-text prediction is mapped to a class first (:func:`predicted_class`): the class name that
appears earliest in the text (the longest one when two start at the same word), or the option a
lone letter picks in a multiple-choice question ("B" or "B." with ``B. forest`` in the question).
Datasets write one class many ways (``DenseResidential``, ``dense_residential``, ``Storage
tanks``, ``bareland``) and models answer in plain English ("dense residential", "a storage
tank", "bare land"), so names and answers are compared as words (:func:`name_words`) and with
the spaces between words removed. Scores keep the class names as the dataset wrote them. Macro
F1 averages over the classes of the references.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

from rsgpt4v.evaluate.normalize import normalize_answer

_OPTION = re.compile(r"^\s*([A-Z])\.\s+(.+?)\s*$", re.MULTILINE)
_LETTER = re.compile(r"^\s*\(?([A-Za-z])\)?(?:[.):]|\s|$)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def question_options(question: str) -> dict[str, str]:
    """The lettered options of a multiple-choice question (``A. airport`` lines)."""
    return {m.group(1): m.group(2) for m in _OPTION.finditer(question)}


def singular(word: str) -> str:
    """A lower-case English word in the singular, by a few suffix rules: tanks → tank, churches →
    church, industries → industry, buses → bus; words that only look plural (grass, tennis,
    campus) and short words stay. Both sides of a comparison go through it, so a rare wrong
    singular still matches itself."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zzes")) or re.search(r"[^aeiou]uses$", word):
        return word[:-2]
    return word[:-1]


@lru_cache(maxsize=1 << 16)
def name_words(text: str) -> tuple[str, ...]:
    """The words a class name or an answer is compared by: CamelCase split, then
    :func:`~rsgpt4v.evaluate.normalize.normalize_answer` (lower case, ``_`` / ``-`` /
    punctuation to spaces, articles dropped), each word singular."""
    return tuple(singular(w) for w in normalize_answer(_CAMEL.sub(" ", text)).split())


@lru_cache(maxsize=64)
def _class_index(classes: tuple[str, ...]) -> tuple[dict[str, str], int]:
    """Each class by its words joined without spaces (so ``bareland`` is ``bare land``), and
    the longest such key. Names that compare equal go to the first in sorted order."""
    index: dict[str, str] = {}
    for name in sorted(classes):
        key = "".join(name_words(name))
        if key:
            index.setdefault(key, name)
    return index, max(map(len, index), default=0)


def predicted_class(prediction: str, classes: Sequence[str], question: str = "") -> str | None:
    """The class a prediction names, or None when it names none of ``classes``.

    A class matches a run of whole words of the answer; the earliest run wins, the longest at
    the same word ("dense residential" over "residential")."""
    index, longest = _class_index(tuple(classes))
    words = name_words(prediction)
    for start in range(len(words)):
        key, found = "", None
        for word in words[start:]:
            key += word
            if len(key) > longest:
                break
            found = index.get(key, found)
        if found is not None:
            return found
    options = question_options(question)
    letter = _LETTER.match(prediction)
    if options and letter and letter.group(1).upper() in options:
        return index.get("".join(name_words(options[letter.group(1).upper()])))
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
