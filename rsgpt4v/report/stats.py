"""Dataset statistics gathered while validating, and the sample the report's viewer shows.

Counts are kept per source dataset, task and generator (kept and rejected); class histograms of
the labelled objects (each record once) and of the boxes instructions refer to; box sizes
(square root of the area, pixels) and answer lengths (words) as plain arrays; rejection reasons.
Phrasing variety (:class:`PhrasingVariety`): distinct answer templates and distinct words per
1,000 instructions. The viewer's sample is two reservoirs (kept and rejected instructions,
``random.Random(seed)``), so it is uniform over the input without holding it, and shows rejected
items whenever any exist.
"""

from __future__ import annotations

import math
import random
import re
from array import array
from collections import Counter
from typing import Any

from rsgpt4v.schema import REF, Instruction, Record
from rsgpt4v.validate.checks import REASONS, Findings
from rsgpt4v.validate.vocabulary import Vocabulary

MAX_CONTEXT_OBJECTS = 300  # labelled boxes drawn faintly around a sample's own boxes


class ReportStats:
    """Running statistics of a validation run (see the module docstring)."""

    def __init__(self, samples: int = 48, seed: int = 0) -> None:
        self.size = samples
        self._rng = random.Random(seed)
        self.totals: Counter[str] = Counter()
        self.per_source: dict[str, Counter[str]] = {}
        self.per_task: dict[str, Counter[str]] = {}
        self.per_generator: dict[str, Counter[str]] = {}
        self.reasons: Counter[str] = Counter()
        self.object_classes: Counter[str] = Counter()
        self.region_classes: Counter[str] = Counter()
        self.object_sizes = array("d")
        self.region_sizes = array("d")
        self.answer_words = array("l")
        self._records: set[str] = set()
        self._seen = {"kept": 0, "rejected": 0}
        self._reservoir: dict[str, list[dict[str, Any]]] = {"kept": [], "rejected": []}
        self.variety = PhrasingVariety()

    def add(self, instruction: Instruction | None, record: Record | None, found: Findings) -> None:
        """Count one instruction (None: a line that was not one) and maybe sample it."""
        state = "rejected" if found.rejections else "kept"
        self.totals[state] += 1
        self.reasons.update(r.code for r in found.rejections)
        source = record.dataset if record is not None else "(no record)"
        task = instruction.task if instruction is not None else "(unreadable)"
        generator = instruction.source.generator if instruction is not None else "(unreadable)"
        for table, key in (
            (self.per_source, source),
            (self.per_task, task),
            (self.per_generator, generator),
        ):
            table.setdefault(key, Counter())[state] += 1
        if record is not None and record.id not in self._records:
            self._records.add(record.id)
            self.object_classes.update(o.category for o in record.objects)
            self.object_sizes.extend(math.sqrt(o.bbox[2] * o.bbox[3]) for o in record.objects)
        if instruction is None:
            return
        self.variety.add(instruction, record)
        regions = instruction.regions
        categories = {str(o.id): o.category for o in record.objects} if record and regions else {}
        for key, region in regions.items():
            self.region_classes[categories.get(key, "(unknown)")] += 1
            self.region_sizes.append(math.sqrt(max(region.bbox[2] * region.bbox[3], 0.0)))
        self.answer_words.extend(
            len(m.content.split()) for m in instruction.messages if m.role == "assistant"
        )
        self._sample(state, instruction, record, found)

    def _sample(
        self, state: str, instruction: Instruction, record: Record | None, found: Findings
    ) -> None:
        self._seen[state] += 1
        reservoir = self._reservoir[state]
        if len(reservoir) < self.size:
            reservoir.append(sample_entry(instruction, record, found))
            return
        slot = self._rng.randrange(self._seen[state])
        if slot < self.size:
            reservoir[slot] = sample_entry(instruction, record, found)

    def samples(self) -> list[dict[str, Any]]:
        """Up to ``samples`` entries: rejected ones first (at most half unless kept run out)."""
        kept, rejected = self._reservoir["kept"], self._reservoir["rejected"]
        n_rejected = max(self.size // 2, self.size - len(kept))
        chosen = rejected[:n_rejected]
        return chosen + kept[: self.size - len(chosen)]

    def summary(self) -> dict[str, Any]:
        """The summary JSON: every count of the report, plain JSON types."""
        return {
            "instructions": sum(self.totals.values()),
            "kept": self.totals["kept"],
            "rejected": self.totals["rejected"],
            "records": len(self._records),
            "per_source": _table(self.per_source),
            "per_task": _table(self.per_task),
            "per_generator": _table(self.per_generator),
            "rejection_reasons": {
                code: {"count": n, "meaning": REASONS.get(code, "")}
                for code, n in self.reasons.most_common()
            },
            "object_classes": dict(self.object_classes.most_common()),
            "region_classes": dict(self.region_classes.most_common()),
            "object_box_size_px": _describe(self.object_sizes),
            "region_box_size_px": _describe(self.region_sizes),
            "answer_length_words": _describe(self.answer_words),
            "phrasing_variety": self.variety.summary(),
        }


def sample_entry(
    instruction: Instruction, record: Record | None, found: Findings
) -> dict[str, Any]:
    """What the viewer needs of one instruction: text, boxes, labels around it, rejections."""
    categories = {str(o.id): o.category for o in record.objects} if record else {}
    objects = record.objects[:MAX_CONTEXT_OBJECTS] if record else []
    return {
        "id": instruction.id,
        "image": instruction.image,
        "image_size": list(instruction.image_size),
        "dataset": record.dataset if record else None,
        "split": record.split if record else None,
        "task": instruction.task,
        "generator": instruction.source.generator,
        "template": instruction.source.template,
        "messages": [{"role": m.role, "content": m.content} for m in instruction.messages],
        "regions": [
            {
                "id": key,
                "bbox": list(region.bbox),
                "polygon": region.polygon,
                "category": categories.get(key),
            }
            for key, region in instruction.regions.items()
        ],
        "text_boxes": [
            {
                "bbox": match.xywh(),
                "style": match.style,
                "iou": round(match.iou, 3),
                "object_id": match.object_id,
            }
            for match in found.text_boxes
        ],
        "objects": [{"id": o.id, "category": o.category, "bbox": list(o.bbox)} for o in objects],
        "rejections": [{"code": r.code, "message": r.message} for r in found.rejections],
    }


def _table(counts: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    rows = sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return {key: {"kept": c["kept"], "rejected": c["rejected"]} for key, c in rows}


def _describe(values: array) -> dict[str, float | int | None]:
    """Count, min, median, mean and max of a number series (None where it is empty)."""
    if not values:
        return {"count": 0, "min": None, "median": None, "mean": None, "max": None}
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {
        "count": len(ordered),
        "min": round(ordered[0], 2),
        "median": round(median, 2),
        "mean": round(sum(ordered) / len(ordered), 2),
        "max": round(ordered[-1], 2),
    }


_MEASURE = re.compile(r"\d[\d,]*(?:\.\d+)?\s*(?:m²|km²|km|m|ha|hectares?|%|°|px)(?![\w²])")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+(?:['\u2019-][a-z]+)*")
_SPACE = re.compile(r"\s+")


class PhrasingVariety:
    """How varied the wording of a run is: answer templates and vocabulary per 1,000 instructions.

    An answer's template is its text, lower case, with every ``<ref:N>`` written ``<ref>``, every
    class name of the record's dataset (its converter's class list and the classes seen in its
    records so far, in every form :class:`~rsgpt4v.validate.vocabulary.Vocabulary` knows)
    ``<class>``, every number with a unit (``38 m``, ``410 m²``, ``1.6 hectares``) ``<measure>``
    and every other number ``<num>``: answers that differ only in those share a template. The
    vocabulary is the distinct lower-cased words (letters only; refs and numbers left out) of
    every message, questions and answers. Distinct counts grow slower than the run, so the
    figures are per block: the mean, over consecutive blocks of ``BLOCK`` instructions, of the
    distinct templates (words) in a block; a run shorter than one block is one block, scaled to
    ``BLOCK`` instructions (its count * BLOCK / instructions), and a last partial block of a
    longer run is left out. Whole-run distinct counts are given too.
    """

    BLOCK = 1000

    def __init__(self) -> None:
        self.instructions = 0
        self.answers = 0
        self.templates: set[str] = set()
        self.words: set[str] = set()
        self._block_templates: set[str] = set()
        self._block_words: set[str] = set()
        self._block_size = 0
        self._full_blocks: list[tuple[int, int]] = []
        self._vocabularies: dict[str, tuple[frozenset[str], Vocabulary]] = {}

    def add(self, instruction: Instruction, record: Record | None) -> None:
        vocabulary = self._vocabulary(record)
        for message in instruction.messages:
            text = message.content.replace("<image>", " ")
            words = _WORD.findall(REF.sub(" ", text).lower())
            self.words.update(words)
            self._block_words.update(words)
            if message.role == "assistant":
                template = answer_template(text, vocabulary)
                self.answers += 1
                self.templates.add(template)
                self._block_templates.add(template)
        self.instructions += 1
        self._block_size += 1
        if self._block_size == self.BLOCK:
            self._full_blocks.append((len(self._block_templates), len(self._block_words)))
            self._block_templates, self._block_words = set(), set()
            self._block_size = 0

    def _vocabulary(self, record: Record | None) -> Vocabulary | None:
        if record is None:
            return None
        classes, vocabulary = self._vocabularies.get(record.dataset, (frozenset(), None))
        seen = {o.category for o in record.objects}
        if vocabulary is None or not seen <= classes:
            from rsgpt4v.converters import BUILTIN_CONVERTERS, get_converter

            known = (
                get_converter(record.dataset).CLASSES
                if record.dataset in BUILTIN_CONVERTERS
                else ()
            )
            classes = classes | seen | set(known)
            vocabulary = Vocabulary(sorted(classes), record.dataset)
            self._vocabularies[record.dataset] = (classes, vocabulary)
        return vocabulary

    def summary(self) -> dict[str, Any]:
        if self._full_blocks:
            blocks = self._full_blocks
            templates = sum(t for t, _ in blocks) / len(blocks)
            words = sum(w for _, w in blocks) / len(blocks)
        elif self.instructions:
            scale = self.BLOCK / self.instructions
            templates, words = len(self.templates) * scale, len(self.words) * scale
        else:
            templates = words = 0.0
        return {
            "instructions": self.instructions,
            "answers": self.answers,
            "answer_templates": len(self.templates),
            "vocabulary": len(self.words),
            "answer_templates_per_1000": round(templates, 1),
            "vocabulary_per_1000": round(words, 1),
        }


def answer_template(text: str, vocabulary: Vocabulary | None = None) -> str:
    """An answer with refs, class names, measurements and numbers as placeholders, lower case."""
    text = REF.sub("<ref>", text)
    if vocabulary is not None:
        for mention in reversed(vocabulary.mentions(text)):
            text = text[: mention.start] + "<class>" + text[mention.end :]
    text = _MEASURE.sub("<measure>", text)
    text = _NUMBER.sub("<num>", text)
    return _SPACE.sub(" ", text.strip().lower())
