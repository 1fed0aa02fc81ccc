"""Ready benchmark adapters: a converter's records (or a held-out instruction split) → items.

Each adapter reads the records ``rsgpt4v convert`` wrote for its dataset, keeps one split (the
published test split by default) and asks the published task with one fixed prompt:

==================  =========================  ==============================================
benchmark           records of                 items
==================  =========================  ==============================================
rsvqa-lr            ``convert rsvqa-lr``       every QA pair; counts scored in RSVQA bins
rsvqa-hr            ``convert rsvqa-hr``       every QA pair; areas scored in RSVQA bins
                                               (``--split test_phili`` for test set 2)
dior-rsvg           ``convert dior-rsvg``      one per referring expression, its box
rsicd, ucm-captions,
sydney-captions,
nwpu-captions       ``convert <name>``         one per image, all its captions as references
instructions        ``instruct`` output        first turn of each instruction of the split
export              an exported LLaVA /        first turn of each conversation of the split,
                    ShareGPT training file     boxes read back in the export's box style
==================  =========================  ==============================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.errors import InputError
from rsgpt4v.evaluate.metrics_vqa import VqaOptions
from rsgpt4v.evaluate.references import EvalItem, items_from_instructions
from rsgpt4v.families import BoxConvention
from rsgpt4v.schema import Record, Region, read_jsonl

VQA_PROMPT = "{question}\nAnswer the question using a single word or phrase."
GROUNDING_PROMPT = "Give the bounding box of the object described as: {expression}"
CAPTION_PROMPT = "Describe this image in one sentence."


@dataclass(frozen=True)
class Benchmark:
    """One published evaluation: which records, which split, how items are made and scored."""

    name: str
    description: str
    datasets: tuple[str, ...]
    split: str | None
    make: Callable[[Record, str], Iterator[EvalItem]] | None = None
    vqa: VqaOptions = field(default_factory=VqaOptions)
    reads: str = "records"  # or "instructions", "export"


def _base(record: Record, item_id: str, benchmark: str) -> dict[str, object]:
    return {
        "id": item_id,
        "record_id": record.id,
        "image": record.image.path,
        "image_size": [record.image.width, record.image.height],
        "benchmark": benchmark,
    }


def vqa_items(record: Record, benchmark: str) -> Iterator[EvalItem]:
    """One item per answered QA pair, its type kept as the question type."""
    for index, qa in enumerate(record.qa):
        if not qa.question.strip() or not qa.answer.strip():
            continue
        yield EvalItem(
            **_base(record, f"{record.id}#vqa-{index}", benchmark),
            task="vqa",
            metric="vqa",
            question_type=qa.type,
            question=VQA_PROMPT.format(question=qa.question.strip()),
            references=[qa.answer.strip()],
        )


def grounding_items(record: Record, benchmark: str) -> Iterator[EvalItem]:
    """One item per object with a referring expression (``attributes.expression``)."""
    for obj in record.objects:
        expression = str(obj.attributes.get("expression") or "").strip()
        if not expression:
            continue
        x, y, w, h = obj.bbox
        yield EvalItem(
            **_base(record, f"{record.id}#grounding-{obj.id}", benchmark),
            task="grounding",
            metric="grounding",
            question=GROUNDING_PROMPT.format(expression=expression),
            references=[f"<ref:{obj.id}>"],
            regions={
                str(obj.id): Region(bbox=obj.bbox, polygon=obj.polygon, category=obj.category)
            },
            boxes=[[x, y, x + w, y + h]],
        )


def caption_items(record: Record, benchmark: str) -> Iterator[EvalItem]:
    """One item per image with captions, every caption a reference."""
    captions = [c.strip() for c in record.captions if c.strip()]
    if captions:
        yield EvalItem(
            **_base(record, f"{record.id}#caption", benchmark),
            task="caption",
            metric="caption",
            question=CAPTION_PROMPT,
            references=captions,
        )


def _caption(name: str, title: str) -> Benchmark:
    return Benchmark(name, f"{title} test captions", (name,), "test", caption_items)


BENCHMARKS: dict[str, Benchmark] = {
    "rsvqa-lr": Benchmark(
        "rsvqa-lr",
        "RSVQA-LR test QA (counts in bins 0, 1-10, 11-100, 101-1000, >1000)",
        ("rsvqa-lr",),
        "test",
        vqa_items,
        VqaOptions(bin_counts=True),
    ),
    "rsvqa-hr": Benchmark(
        "rsvqa-hr",
        "RSVQA-HR test QA (areas in bins 0m2, 1-10m2, … >1000m2)",
        ("rsvqa-hr",),
        "test",
        vqa_items,
        VqaOptions(bin_areas=True),
    ),
    "dior-rsvg": Benchmark(
        "dior-rsvg", "DIOR-RSVG test referring expressions", ("dior-rsvg",), "test", grounding_items
    ),
    "rsicd": _caption("rsicd", "RSICD"),
    "ucm-captions": _caption("ucm-captions", "UCM-Captions"),
    "sydney-captions": _caption("sydney-captions", "Sydney-Captions"),
    "nwpu-captions": _caption("nwpu-captions", "NWPU-Captions"),
    "instructions": Benchmark(
        "instructions",
        "held-out split of an instructions file (any export's source)",
        (),
        None,
        reads="instructions",
    ),
    "export": Benchmark(
        "export", "held-out split of an exported LLaVA / ShareGPT file", (), None, reads="export"
    ),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        known = ", ".join(BENCHMARKS)
        raise InputError(f"unknown benchmark {name!r}; known: {known}") from None


def benchmark_items(
    name: str,
    source: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    boxes: BoxConvention | None = None,
    image_root: str | Path | None = None,
) -> Iterator[EvalItem]:
    """The items of benchmark ``name`` from ``source`` (records; instructions or an export
    for ``instructions`` and ``export``), of ``split`` (default: the benchmark's own), at most
    ``limit``. An export's boxes are read in ``boxes``, its image sizes from ``image_root``."""
    benchmark = get_benchmark(name)
    split = split if split is not None else benchmark.split
    if benchmark.reads == "instructions":
        items = items_from_instructions(source, split=split)
    elif benchmark.reads == "export":
        from rsgpt4v.evaluate.export_items import items_from_export

        items = items_from_export(
            source, boxes=boxes or BoxConvention(), image_root=image_root, split=split
        )
    else:
        items = _record_items(benchmark, source, split)
    for count, item in enumerate(items):
        if limit is not None and count >= limit:
            return
        yield item


def _record_items(
    benchmark: Benchmark, source: str | Path, split: str | None
) -> Iterator[EvalItem]:
    seen: Counter[tuple[str, str]] = Counter()
    produced = 0
    for record in read_jsonl(source, Record):
        seen[(record.dataset, record.split)] += 1
        if record.dataset not in benchmark.datasets or (split and record.split != split):
            continue
        for item in benchmark.make(record, benchmark.name):
            produced += 1
            yield item
    if not produced:
        found = ", ".join(f"{d}/{s} ({n})" for (d, s), n in sorted(seen.items())) or "none"
        raise InputError(
            f"no {benchmark.name} items of split {split!r}; records by dataset/split: {found}",
            file=Path(source),
        )
