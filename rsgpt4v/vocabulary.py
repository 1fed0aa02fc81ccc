"""What the datasets' classes are: the classes of each dataset (its converter's list and a cheap
first pass over a records file), how completely each dataset labels them, and how a class string
reads in a sentence. Below both instruct and validate, which judge text by the same facts.

The class vocabulary of a records file is read in one cheap pass.

Negative and multiple-choice questions name classes absent from an image but belonging to its
dataset, so every class of the input must be known before the first record is phrased. Parsing
each line for it (even into a two-field model) costs as much as a fifth of the whole stage; yet
after the first few lines of a dataset almost every line only repeats classes already seen.

So each line is first scanned as text: outside JSON strings a quote is never escaped, so every
``"category"`` key of the line appears literally, and when each one is followed by a plain string
value (``"category":"plane"``, no escapes, no spaces) the values found are every object's class
(plus, possibly, a ``category`` key in some nested field, which can only add names). When the
line's dataset is known and all those names are already among its classes, the line adds nothing
and is skipped. Any other line (a new dataset or class, escapes, spaces, a nested ``dataset``
key) is parsed as before, so the result is exactly that of parsing every line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from rsgpt4v.completeness import EXHAUSTIVE, LabelCompleteness
from rsgpt4v.schema import existing_file, jsonl_lines, line_error

_CATEGORY = re.compile(r'"category":"([^"\\]*)"')
_DATASET = re.compile(r'"dataset":"([^"\\]*)"')


class _ObjectClass(BaseModel):
    category: str


class _RecordClasses(BaseModel):
    """Only what the vocabulary pass needs from a record: skips building whole records."""

    dataset: str
    objects: list[_ObjectClass] = []


def dataset_vocabulary(records_path: str | Path) -> dict[str, tuple[str, ...]]:
    """Class strings per dataset: the registered converter's list plus every class seen."""
    return {
        dataset: tuple(sorted(set(declared_classes(dataset)) | categories))
        for dataset, categories in _seen_classes(existing_file(records_path)).items()
    }


def declared_classes(dataset: str) -> tuple[str, ...]:
    """The class list of the dataset's registered converter (none for a user's own dataset)."""
    from rsgpt4v.converters import BUILTIN_CONVERTERS, get_converter

    return tuple(get_converter(dataset).CLASSES) if dataset in BUILTIN_CONVERTERS else ()


def _seen_classes(path: Path) -> dict[str, set[str]]:
    """Every class string of each dataset's objects, datasets in order of first appearance."""
    seen: dict[str, set[str]] = {}
    for number, line in jsonl_lines(path):  # lines as read_jsonl splits and decodes them
        if _adds_nothing(line, seen):
            continue
        try:
            record = _RecordClasses.model_validate_json(line)
        except ValidationError as error:
            raise line_error(error, _RecordClasses, path, number, line) from None
        seen.setdefault(record.dataset, set()).update(o.category for o in record.objects)
    return seen


def _adds_nothing(line: str, seen: dict[str, set[str]]) -> bool:
    """True when the text alone shows that the line holds no dataset or class not yet seen."""
    if line.count('"dataset"') != 1 or (dataset := _DATASET.search(line)) is None:
        return False
    classes = seen.get(dataset[1])
    if classes is None:
        return False
    names = _CATEGORY.findall(line)
    return len(names) == line.count('"category"') and classes.issuperset(names)


def dataset_completeness(
    datasets: Iterable[str], overrides: Mapping[str, LabelCompleteness] | None = None
) -> dict[str, LabelCompleteness]:
    """Each dataset's completeness: the run's override, else its converter's, else exhaustive."""
    from rsgpt4v.converters import BUILTIN_CONVERTERS, get_converter

    overrides = overrides or {}
    table = {}
    for dataset in datasets:
        if dataset in overrides:
            table[dataset] = overrides[dataset]
        elif dataset in BUILTIN_CONVERTERS:
            table[dataset] = get_converter(dataset).COMPLETENESS
        else:
            table[dataset] = EXHAUSTIVE
    return table


@lru_cache(maxsize=64)
def declared_completeness(dataset: str) -> LabelCompleteness:
    """One dataset's completeness as its converter declares it (exhaustive when unknown)."""
    return dataset_completeness([dataset])[dataset]


@dataclass(frozen=True)
class CategoryName:
    singular: str
    plural: str


@cache
def _overrides() -> dict[str, dict[str, str]]:
    resource = files("rsgpt4v.prompts") / "categories.yaml"
    return yaml.safe_load(resource.read_text(encoding="utf-8")) or {}


@cache
def category_name(category: str) -> CategoryName:
    """How a class string reads in a sentence: ``small-vehicle`` → small vehicle(s)."""
    override = _overrides().get(category)
    if override:
        return CategoryName(override["singular"], override["plural"])
    singular = re.sub(r"[-_\s]+", " ", category).strip().lower()
    return CategoryName(singular, pluralise(singular))


def pluralise(noun_phrase: str) -> str:
    """Regular English plural of the last word (class names are regular nouns)."""
    head, _, last = noun_phrase.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last
