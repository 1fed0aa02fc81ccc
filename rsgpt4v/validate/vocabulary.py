"""Category words of a dataset and the numbers written before them, found in answer text.

Answers talk about objects in words ("There are 9 small vehicles", "three cars", "no harbours").
Checking them against the labels needs every word of every class of the record's dataset: the
class's natural singular and plural (``rsgpt4v.instruct.phrasing.category_name``), its synonyms
and the group words that cover several classes (``prompts/synonyms.yaml``). A dataset's own class
names take precedence over synonyms, and synonyms over group words, so DIOR's ``vehicle`` stays
its own class while a DOTA answer's "vehicles" means small plus large vehicles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml

from rsgpt4v.errors import RsgptError
from rsgpt4v.label_facts import lower_bound_before
from rsgpt4v.vocabulary import category_name, declared_classes, pluralise

_UNITS = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUES = {word: n for n, word in enumerate(_UNITS)} | {
    word: 20 + 10 * n for n, word in enumerate(_TENS)
}
_WORD_VALUES |= {"no": 0, "a single": 1, "a dozen": 12}
_NUMBER = (
    r"\d{1,3}(?:,\d{3})+|\d+"
    rf"|(?:{'|'.join(_TENS)})(?:[\s-](?:{'|'.join(_UNITS[1:10])}))?"
    rf"|a single|a dozen|{'|'.join(sorted(_UNITS, key=len, reverse=True))}|no"
)

_COUNT_BEFORE = re.compile(rf"(?<![\w-])({_NUMBER})\s+$", re.IGNORECASE)
_COUNT_REACH = 40  # characters before a category word searched for its number


def parse_number(text: str) -> int:
    """``"9"``, ``"1,250"``, ``"nine"``, ``"twenty-one"``, ``"no"`` → an int."""
    text = re.sub(r"[\s-]+", " ", text.strip().lower())
    if text.replace(",", "").isdigit():
        return int(text.replace(",", ""))
    if text in _WORD_VALUES:
        return _WORD_VALUES[text]
    tens, _, unit = text.partition(" ")
    return _WORD_VALUES[tens] + _WORD_VALUES[unit]


@dataclass(frozen=True)
class Mention:
    """A category word in a text, with the number written right before it (if any) and the
    words that make that number a lower bound ("at least")."""

    words: str
    categories: frozenset[str]
    start: int
    end: int
    count: int | None = None
    count_text: str | None = None
    lower_bound: str | None = None

    @property
    def said(self) -> str:
        """The number and the words as written: ``at least 9 small vehicles``."""
        return " ".join(w for w in (self.lower_bound, self.count_text, self.words) if w)


Words = dict[str, tuple[str, ...]]


@cache
def synonym_table(dataset: str | None = None) -> tuple[Words, Words]:
    """(class synonyms, group words) from ``prompts/synonyms.yaml``, keyed by natural names.

    The ``datasets`` section adds words for one dataset to the shared ``classes``.
    """
    resource = files("rsgpt4v.prompts") / "synonyms.yaml"
    data = yaml.safe_load(resource.read_text(encoding="utf-8")) or {}
    try:
        classes = _words(data["classes"])
        groups = _words(data["groups"])
        extra = _words((data.get("datasets") or {}).get(dataset) or {})
    except (KeyError, AttributeError, TypeError) as error:
        message = f"prompts/synonyms.yaml: expected 'classes' and 'groups' maps ({error})"
        raise RsgptError(message) from None
    for name, words in extra.items():
        classes[name] = (*classes.get(name, ()), *words)
    return classes, groups


def _words(table: dict) -> Words:
    return {_norm(key): tuple(_norm(w) for w in words) for key, words in table.items()}


def _norm(words: str) -> str:
    return re.sub(r"[-_\s]+", " ", str(words)).strip().lower()


def _forms(words: str) -> set[str]:
    return {words, pluralise(words)}


class Vocabulary:
    """The words of one dataset's classes, and a finder of them (and counts) in text."""

    def __init__(self, classes: Iterable[str], dataset: str | None = None) -> None:
        self.classes = tuple(dict.fromkeys(classes))
        self.natural = {c: category_name(c).singular.lower() for c in self.classes}
        synonyms, groups = synonym_table(dataset)
        terms: dict[str, set[str]] = {}
        for category in self.classes:  # own names first: they are never overridden
            name = category_name(category)
            for form in {_norm(name.singular), _norm(name.plural), *_forms(self.natural[category])}:
                terms.setdefault(form, set()).add(category)
        own = set(terms)
        by_natural: dict[str, list[str]] = {}
        for category, natural in self.natural.items():
            by_natural.setdefault(natural, []).append(category)
        extra: dict[str, set[str]] = {}
        for natural, categories in by_natural.items():
            for synonym in synonyms.get(natural, ()):
                for form in _forms(synonym) - own:
                    extra.setdefault(form, set()).update(categories)
        for group, members in groups.items():
            covered = [c for m in members for c in by_natural.get(m, ())]
            if len(covered) > 1:
                for form in _forms(group) - own - set(extra):
                    terms[form] = set(covered)
        terms |= extra
        # a class named by a number ("7", a raster class value) cannot be told from a count
        self.terms = {
            term: frozenset(categories)
            for term, categories in terms.items()
            if any(char.isalpha() for char in term)
        }
        self._pattern = (
            re.compile(rf"\b(?:{_trie_pattern(self.terms)})\b", re.IGNORECASE)
            if self.terms
            else None
        )

    def mentions(self, text: str) -> list[Mention]:
        """Every category word in ``text``, longest words first at each place, in order."""
        if self._pattern is None:
            return []
        found = []
        for match in self._pattern.finditer(text):
            start = match.start()
            number = _COUNT_BEFORE.search(text, max(0, start - _COUNT_REACH), start)
            count_text = number[1] if number else None
            found.append(
                Mention(
                    words=match[0],
                    categories=self.terms[_norm(match[0])],
                    start=start,
                    end=match.end(),
                    count=parse_number(count_text) if count_text else None,
                    count_text=count_text,
                    lower_bound=lower_bound_before(text, number.start(1)) if number else None,
                )
            )
        return found

    def covers(self, mention: Mention, present: Iterable[str]) -> bool:
        """True when a present class is one of the mention's classes or a kind of it.

        ``ship`` is covered by a present ``merchant ship`` (a merchant ship is a ship), but
        ``small vehicle`` is not covered by a present ``large vehicle``.
        """
        present = set(present)
        if mention.categories & present:
            return True
        words = {self.natural.get(c, _norm(c)) for c in mention.categories}
        return any(self.natural.get(p, _norm(p)).endswith(" " + w) for p in present for w in words)


def _trie_pattern(terms: Iterable[str]) -> str:
    """One regex alternative for many terms, factored by common prefixes (a character trie).

    A plain alternation tries every term at every position; the trie tries each character once.
    Longer terms win over their prefixes (``small vehicles`` over ``small vehicle``), and a space
    inside a term matches any run of spaces or hyphens (``small-vehicle``).
    """
    trie: dict = {}
    for term in terms:
        node = trie
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        branches = [
            (r"[\s-]+" if char == " " else re.escape(char)) + pattern(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            return f"(?:{body})?"
        return body

    return pattern(trie)


@cache
def mention_vocabulary(dataset: str, seen: frozenset[str]) -> Vocabulary:
    """The finder of a dataset's class words: its converter's classes plus every class seen."""
    return Vocabulary(sorted(set(declared_classes(dataset)) | seen), dataset)
