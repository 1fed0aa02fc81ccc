"""Which classes a dataset labels wherever they appear: when a count or an absence is a fact.

A missing label is not a missing object. DOTA v1.0 leaves many cars, buses and boats unmarked
(read by eye on the real scenes P0706 and P1888: 51 buses visible where 50 are labelled, at
least 17 cars where 14 are, whole car parks without a label), so "there are no small vehicles"
or "there are 14 small vehicles" would be false in the image although true of the labels.

Each converter declares its labelling as data (``Converter.COMPLETENESS``, documented with its
source): the classes whose labels are **partial**, and the smallest object size below which
instances of *any* class may be unlabelled (``min_size``, source pixels). A run may override it
per dataset with a YAML file (``instruct --completeness FILE``)::

    dota-v1.0:
      partial: [small-vehicle, large-vehicle, ship]   # or: all, or: []
      min_size: 10
      source: our own reading of 50 scenes

Datasets without a declaration (a user's own YOLO, VOC, COCO or GeoTIFF labels) are taken as
exhaustive: their owner labelled them, and the override says otherwise. The table of a run is
built in :mod:`rsgpt4v.vocabulary` (which knows the converters), beside each dataset's
class vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rsgpt4v.errors import InputError

ALL = "all"
# Why vehicles and ships are partial in detection datasets that do not claim otherwise
DENSE_SMALL_CLASSES = (
    "vehicles and ships are dense small classes: the paper claims no exhaustive labelling of "
    "them, and DOTA's measured misses of the same classes suggest they are partial"
)


@dataclass(frozen=True)
class LabelCompleteness:
    """How completely one dataset's objects are labelled.

    ``partial``: classes whose labels miss instances, or ``"all"``. ``min_size``: instances
    whose shorter side is under this many source pixels may be unlabelled in every class.
    """

    partial: frozenset[str] | str = field(default_factory=frozenset)
    min_size: float = 0.0
    source: str = ""

    def exhaustive(self, category: str) -> bool:
        """True when every instance of ``category`` (of at least ``min_size``) is labelled."""
        if self.partial == ALL:
            return False
        return category not in self.partial

    @classmethod
    def from_mapping(cls, entry: Mapping[str, object], where: str) -> LabelCompleteness:
        """One dataset's entry of a completeness file; errors name the file and dataset."""
        unknown = sorted(set(entry) - {"partial", "min_size", "source"})
        if unknown:
            raise InputError(
                f"{where}: unknown key {unknown[0]!r}; known: partial, min_size, source"
            )
        partial = entry.get("partial", [])
        if partial != ALL:
            if not isinstance(partial, list) or not all(isinstance(c, str) for c in partial):
                raise InputError(
                    f"{where}: partial must be 'all' or a list of class names", value=partial
                )
            partial = frozenset(partial)
        min_size = entry.get("min_size", 0)
        if isinstance(min_size, bool) or not isinstance(min_size, int | float) or min_size < 0:
            raise InputError(f"{where}: min_size must be a number of pixels >= 0", value=min_size)
        return cls(partial, float(min_size), str(entry.get("source", "")))


EXHAUSTIVE = LabelCompleteness(source="no declaration: the labels are taken as exhaustive")


def load_completeness(path: str | Path) -> dict[str, LabelCompleteness]:
    """A completeness file: ``{dataset: {partial, min_size, source}}``."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read completeness file: {error.strerror}", file=path) from None
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML: {error}", file=path) from None
    if not isinstance(tree, dict):
        raise InputError("a completeness file maps dataset names to entries", file=path)
    table = {}
    for dataset, entry in tree.items():
        if not isinstance(entry, dict):
            raise InputError(f"{path}: entry {dataset!r} must be a mapping", value=entry)
        table[str(dataset)] = LabelCompleteness.from_mapping(entry, f"{path}: {dataset}")
    return table


def completeness_table(value: object) -> object:
    """A completeness file (as the command line gives it; None: not given) → its table; a table
    is left as it is. Use as a ``field_validator(..., mode="before")``."""
    if value is None:
        return {}
    return load_completeness(value) if isinstance(value, str | Path) else value
