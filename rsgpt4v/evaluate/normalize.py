"""Answer normalisation for VQA and counting: the same answer written two ways scores the same.

A model that says "Yes, there is." or "There are twelve cars." means "yes" and "12"; exact
string matching would count both wrong. The rules here are deliberately few and documented in
docs/evaluate.md:

- text is lower-cased, thousands separators (``1,234``) are removed, punctuation becomes space
  (a decimal point inside a number is kept), articles (a, an, the) are dropped, spaces collapse;
- number words (``zero`` … ``nineteen``, tens, ``hundred``, ``thousand``, ``million``) become
  digits: ``twenty-one`` → ``21``, ``one hundred and five`` → ``105``;
- area units are unified to ``m2``: ``m2``, ``m^2``, ``m²``, ``sq m``, ``sqm``, ``square meters``
  / ``metres``; ``km2`` and ``ha`` are converted to m2 when an area is parsed;
- RSVQA bins (Lobry et al. 2020): counts 0, 1-10, 11-100, 101-1000, more than 1000, and the
  same bins for areas in m2 (``0m2``, ``1-10m2``, … ``>1000m2``).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

ARTICLES = frozenset({"a", "an", "the"})
UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "none": 0, "no": 0,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# "no" and "none" are numbers only inside a count answer ("no cars" → 0), see parse_number.
_WORD_NUMBERS = {k: v for k, v in UNITS.items() if k not in ("no", "none")}

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_AREA_UNIT = re.compile(
    r"(?<![a-z])(?:square\s+met(?:er|re)s?|sq\.?\s*m|sqm|m\s*\^\s*2|m²|m2)(?![a-z0-9])"
)
_KM2 = re.compile(
    r"(?<![a-z])(?:square\s+kilomet(?:er|re)s?|sq\.?\s*km|km\s*\^\s*2|km²|km2)(?![a-z0-9])"
)
_HECTARE = re.compile(r"\b(?:hectares?|ha)\b", re.IGNORECASE)
_PUNCT = re.compile(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)|_")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")

COUNT_BINS = ((0, "0"), (10, "1-10"), (100, "11-100"), (1000, "101-1000"))
MORE_THAN = ">1000"


@lru_cache(maxsize=1 << 16)
def normalize_answer(text: str) -> str:
    """The comparable form of an answer (see the module docstring); cached, as references and
    class names repeat across a whole test set."""
    text = _THOUSANDS.sub("", text.lower().strip())
    text = _KM2.sub(" km2 ", text)
    text = _AREA_UNIT.sub(" m2 ", text)
    text = _PUNCT.sub(" ", text)
    words = [w for w in text.split() if w not in ARTICLES]
    words = _numbers_to_digits(words)
    joined = " ".join(words)
    return re.sub(r"(\d) (k?m2)\b", r"\1\2", joined)  # "1234 m2" → "1234m2", as RSVQA writes


def _numbers_to_digits(words: list[str]) -> list[str]:
    """Replace each run of number words by its value (``twenty one`` → ``21``)."""
    out: list[str] = []
    index = 0
    while index < len(words):
        value, used = _read_number_words(words, index)
        if used:
            out.append(str(value))
            index += used
        else:
            out.append(words[index])
            index += 1
    return out


def _read_number_words(words: list[str], start: int) -> tuple[int, int]:
    """(value, words used) of the number written in words at ``start``; used is 0 for none."""
    total = current = 0
    used = 0
    index = start
    while index < len(words):
        word = words[index]
        parts = word.split("-")
        if all(p in _WORD_NUMBERS for p in parts) and parts:
            current += sum(_WORD_NUMBERS[p] for p in parts)
        elif word in SCALES and used:
            scale = SCALES[word]
            if scale == 100:
                current *= 100
            else:
                total += max(current, 1) * scale
                current = 0
        elif (
            word == "and" and used and words[index - 1] in SCALES and _next_is_number(words, index)
        ):
            pass
        else:
            break
        index += 1
        used = index - start
    return total + current, used


def _next_is_number(words: list[str], index: int) -> bool:
    return index + 1 < len(words) and words[index + 1].split("-")[0] in _WORD_NUMBERS


def parse_number(text: str) -> float | None:
    """The first number in an answer, in digits or words; ``no``/``none`` count as 0.

    "There are 12 cars" → 12; "twenty-one" → 21; "No cars." → 0; "I cannot tell" → None.
    """
    words = normalize_answer(text).split()
    for word in words:
        match = _NUMBER.fullmatch(word.removesuffix("km2").removesuffix("m2"))
        if match:
            return float(match.group())
    if words and words[0] in ("no", "none"):
        return 0.0
    return None


def parse_area(text: str) -> float | None:
    """An area in square metres: ``1234m2``, ``1,234 square meters``, ``2 km2``, ``3 ha``."""
    value = parse_number(text)
    if value is None:
        return None
    lowered = text.lower()
    if _KM2.search(lowered):
        return value * 1e6
    if _HECTARE.search(lowered):
        return value * 1e4
    return value


def parse_yes_no(text: str) -> str | None:
    """``yes`` or ``no`` when the answer starts with one (after normalisation), else None."""
    words = normalize_answer(text).split()
    if words and words[0] in ("yes", "no"):
        return words[0]
    if words and words[0] in ("true", "false"):
        return "yes" if words[0] == "true" else "no"
    return None


def count_bin(value: float) -> str:
    """RSVQA's count bin of a number: 0, 1-10, 11-100, 101-1000, >1000."""
    if not math.isfinite(value):
        return MORE_THAN
    for upper, label in COUNT_BINS:
        if value <= upper:
            return label
    return MORE_THAN


def area_bin(square_metres: float) -> str:
    """RSVQA's area bin (same edges as counts, in m2): 0m2, 1-10m2, … >1000m2."""
    return count_bin(square_metres) + "m2"
