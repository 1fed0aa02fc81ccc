"""What a record's labels vouch for: the one rule by which generated text is held to them.

The LLM pass (:mod:`rsgpt4v.instruct.llm.reply_checks`) and ``validate``
(:mod:`rsgpt4v.validate.checks`) each read class names and numbers out of text in their own way,
and both ask :class:`LabelFacts` whether what they read is what the labels show, so a reply the
LLM pass keeps is not rejected later for a rule of its own. The rule tasks read the same facts
(:func:`labels_are_complete`, :data:`NESTED_VOCABULARIES`) to decide what they may say.

Which classes a dataset labels wherever they appear is :mod:`rsgpt4v.completeness`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from rsgpt4v.completeness import EXHAUSTIVE, LabelCompleteness
from rsgpt4v.schema import Record

# Datasets whose class lists nest (HRSC2016: ship ⊃ aircraft carrier ⊃ Nimitz; xView: passenger
# vehicle ⊃ small car): a class without a label may still be present under another class's name.
NESTED_VOCABULARIES = frozenset({"hrsc2016", "xview"})

# Words before a number that make it a lower bound ("at least 14 small vehicles")
_LOWER_BOUND = re.compile(r"\b(at least|more than|over|some|no fewer than)\s+$", re.IGNORECASE)
_LOWER_BOUND_REACH = 20  # characters before a number searched for its lower-bound words


def labels_are_complete(record: Record) -> bool:
    """True when the objects are every object of the image, so counts and absences are facts.

    Not so for unlabelled images, images that lost objects to --skip-bad, referring-expression
    sets that label only some objects (``objects_exhaustive: false``) and COCO crowd regions
    (one region, many objects).
    """
    meta = record.meta
    return (
        record.labelled
        and not meta.get("skipped_objects")
        and meta.get("objects_exhaustive", True) is not False
        and not meta.get("crowd_regions")
    )


def lower_bound_before(text: str, start: int) -> str | None:
    """The words that make the number at ``start`` a lower bound ("at least"), if any."""
    found = _LOWER_BOUND.search(text, max(0, start - _LOWER_BOUND_REACH), start)
    return found[1] if found else None


@dataclass(frozen=True)
class LabelFacts:
    """What one record's labels say about its classes, for checking a text against them.

    ``counts``: labelled objects per class; ``complete``: :func:`labels_are_complete`;
    ``labelling``: which classes the dataset labels wherever they appear.
    """

    dataset: str
    counts: Mapping[str, int]
    complete: bool
    labelling: LabelCompleteness = EXHAUSTIVE

    @classmethod
    def of(cls, record: Record, labelling: LabelCompleteness) -> LabelFacts:
        counts = Counter(o.category for o in record.objects)
        return cls(record.dataset, counts, labels_are_complete(record), labelling)

    def labelled(self, categories: Collection[str]) -> int:
        return sum(self.counts.get(c, 0) for c in categories)

    def exhaustive(self, categories: Collection[str]) -> bool:
        """True when every instance of these classes is labelled: their count is exact."""
        return self.complete and all(self.labelling.exhaustive(c) for c in categories)

    def invented(self, categories: Collection[str]) -> bool:
        """True when a class named as present (any of ``categories``, what one word may mean)
        is not what the labels show: none of them is labelled, and the labels list every object.

        A class the dataset labels only partially counts too: the labels show some of it where
        it is there. Not so where the classes nest: a kind of the class may carry the label.
        """
        return (
            self.complete
            and self.dataset not in NESTED_VOCABULARIES
            and not self.labelled(categories)
        )

    def count_problem(
        self, categories: Collection[str], stated: int, *, total: bool, lower_bound: bool
    ) -> str | None:
        """Why a number of these classes is not one the labels vouch for; None when it is.

        ``total``: the text gives it as the number of them all (else it may count a subset);
        ``lower_bound``: "at least" it. A total must be the labelled count, and is known only
        where the labels are exhaustive; any other number must not exceed the labelled count.
        Classes without a label in a record whose labels are incomplete are not known at all.
        """
        labelled = self.labelled(categories)
        if not (self.complete or labelled):
            return None
        names = " + ".join(sorted(categories))
        exact = total and not lower_bound
        if exact and not self.exhaustive(categories):
            verb = "is" if len(categories) == 1 else "are"
            return (
                f"as an exact count, but {names} {verb} not labelled exhaustively: "
                f"the labels have {labelled}, so at least {labelled}"
            )
        if stated > labelled or (exact and stated != labelled):
            return f"but the labels have {labelled} {names}"
        return None
