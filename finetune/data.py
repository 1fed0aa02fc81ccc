"""Training samples from our files: instructions.jsonl, or the llava / sharegpt exports.

Instructions are the preferred input: their text keeps boxes as ``<ref:N>`` placeholders and
their regions hold the boxes, so the same file trains any family with boxes written in that
family's native style (and augmentation can move the boxes before the text is written). The
exports are read as written: their boxes were rendered at export time with ``--boxes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v.errors import InputError
from rsgpt4v.exporters.common import IMAGE_TOKEN, ExportOptions, conversation
from rsgpt4v.families import BoxConvention, pad_colour
from rsgpt4v.finetune.config import DataSource, Stage
from rsgpt4v.schema import Instruction, Message, Region, read_jsonl

log = logging.getLogger(__name__)

LLAVA_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


@dataclass
class Sample:
    """One conversation about at most one image.

    With ``instruction`` set, ``turns`` are rendered from it (boxes in the requested style);
    otherwise ``turns`` holds the export's text, used as written. ``key`` names the sample
    across stages (the instruction id, or the file and item number), for the held-out split.
    """

    image: Path | None
    turns: list[Message] = field(default_factory=list)
    instruction: Instruction | None = None
    key: str = ""

    @property
    def regions(self) -> dict[str, list[float]]:
        if self.instruction is None:
            return {}
        return {key: list(region.bbox) for key, region in self.instruction.regions.items()}

    @property
    def raw_text(self) -> str:
        """All turn text with placeholders kept (what augmentation checks for conflicts)."""
        if self.instruction is not None:
            return "\n".join(m.content for m in self.instruction.messages)
        return "\n".join(m.content for m in self.turns)

    def render(
        self,
        boxes: BoxConvention,
        *,
        image_size: tuple[int, int] | None = None,
        regions: dict[str, list[float]] | None = None,
    ) -> list[Message]:
        """The turns with boxes in the family's convention; ``image_size``/``regions`` after
        augmentation (the convention's frame follows the image the model is shown)."""
        if self.instruction is None:
            return list(self.turns)
        instruction = self.instruction
        update: dict[str, Any] = {}
        if image_size is not None:
            update["image_size"] = list(image_size)
        if regions is not None:
            moved = {}
            for key, box in regions.items():
                old = instruction.regions[key]
                # A moved box makes the source polygon stale (angle styles read it).
                polygon = old.polygon if list(old.bbox) == list(box) else None
                moved[key] = Region(bbox=list(box), polygon=polygon, category=old.category)
            update["regions"] = moved
        if update:
            instruction = instruction.model_copy(update=update)
        return conversation(instruction, ExportOptions(boxes=boxes))


def detect_format(path: Path) -> str:
    """instructions, llava or sharegpt, from the first item of the file."""
    first = _first_item(path)
    if "record_id" in first and "messages" in first:
        return "instructions"
    if "conversations" in first:
        return "llava"
    if "messages" in first:
        return "sharegpt"
    raise InputError(
        "cannot tell the layout: expected instructions (record_id, messages), llava "
        "(conversations) or sharegpt (messages, images) items",
        file=path,
    )


def _first_item(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("data file not found", file=path)
    with path.open(encoding="utf-8") as handle:
        head = handle.read(1 << 16).lstrip()
    try:
        if head.startswith("["):
            items = json.loads(path.read_text(encoding="utf-8"))
            if not items:
                raise InputError("the file holds no items", file=path)
            return items[0]
        return json.loads(head.splitlines()[0])
    except (json.JSONDecodeError, IndexError) as error:
        raise InputError(f"not JSON or JSON Lines: {error}", file=path) from None


def _json_items(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise InputError(f"not JSON: {error.msg}", file=path, line=number) from None
    return items


def _image(root: Path, relative: str | None) -> Path | None:
    return None if relative is None else root / relative


def _export_turns(
    messages: list[dict[str, Any]], path: Path, number: int, role_key: str, text_key: str
) -> list[Message]:
    turns = []
    for message in messages:
        role = LLAVA_ROLES.get(message[role_key], message[role_key])
        text = str(message[text_key]).replace(IMAGE_TOKEN, "").strip()
        try:
            turns.append(Message(role=role, content=text))
        except ValueError:
            raise InputError(
                f"unknown role {message[role_key]!r}", file=path, entry=f"item {number}"
            ) from None
    return turns


def read_source(source: DataSource, boxes: BoxConvention) -> list[Sample]:
    """Every usable sample of one file; conversations that cannot be trained on are skipped."""
    path = source.path
    fmt = detect_format(path) if source.format == "auto" else source.format
    root = source.image_root or path.parent
    samples: list[Sample] = []
    skipped: list[str] = []
    if fmt == "instructions":
        for instruction in read_jsonl(path, Instruction):
            if source.tasks is not None and instruction.task not in source.tasks:
                continue
            sample = Sample(
                _image(root, instruction.image), instruction=instruction, key=instruction.id
            )
            try:
                sample.render(boxes)
            except ValueError as error:
                skipped.append(f"{instruction.id}: {error}")
                continue
            samples.append(sample)
    else:
        if source.tasks is not None:
            raise InputError("data.tasks filters instructions files only", file=path)
        for number, item in enumerate(_json_items(path)):
            if fmt == "llava":
                turns = _export_turns(item.get("conversations", []), path, number, "from", "value")
                image = item.get("image")
            else:
                turns = _export_turns(item.get("messages", []), path, number, "role", "content")
                images = item.get("images") or []
                if len(images) > 1:
                    skipped.append(f"item {number}: {len(images)} images (one is supported)")
                    continue
                image = images[0] if images else None
            if not turns or turns[-1].role != "assistant":
                skipped.append(f"item {number}: does not end with an assistant turn")
                continue
            samples.append(Sample(_image(root, image), turns=turns, key=f"{path}#{number}"))
    if skipped:
        log.warning("%s: skipped %d conversation(s), first: %s", path, len(skipped), skipped[0])
    if not samples:
        raise InputError("no usable conversations", file=path)
    missing = next((s.image for s in samples if s.image and not s.image.is_file()), None)
    if missing is not None:
        raise InputError(
            f"image not found: {missing}; set image_root to the folder the paths are relative to",
            file=path,
        )
    return samples


def weighted(samples: list[Sample], weight: float, rng: random.Random) -> list[Sample]:
    """``weight`` copies of the list: whole repeats, then a seeded subset for the fraction."""
    whole, fraction = divmod(weight, 1.0)
    out = samples * int(whole)
    out.extend(rng.sample(samples, round(fraction * len(samples))))
    return out


def _held_out_rank(seed: int, key: str) -> str:
    """A sample's place in the held-out order: the same in every stage that reads it."""
    return hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()


def stage_samples(
    stage: Stage, boxes: BoxConvention, eval_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """(train, eval) samples of a stage's mix; eval is held out per file before weighting.

    The samples held out are those first in a seeded hash order of their keys, so a file read
    by several stages holds out the same samples in each.
    """
    rng = random.Random(seed)
    train: list[Sample] = []
    held_out: list[Sample] = []
    for source in stage.data:
        samples = sorted(read_source(source, boxes), key=lambda s: _held_out_rank(seed, s.key))
        n_eval = round(eval_fraction * len(samples))
        if eval_fraction > 0 and len(samples) > 1:
            n_eval = max(1, n_eval)
        held_out.extend(samples[:n_eval])
        train.extend(weighted(samples[n_eval:], source.weight, rng))
    if not train:
        raise InputError(f"stage {stage.name!r} has no training samples left after the split")
    rng.shuffle(train)
    return train, held_out


def _image_size(sample: Sample) -> tuple[int, int] | None:
    if sample.image is None:
        return None
    if sample.instruction is not None:
        width, height = sample.instruction.image_size
        return width, height
    from rsgpt4v.raster import describe_raster

    facts = describe_raster(sample.image)
    return facts.width, facts.height


class SampleDataset:
    """Samples encoded on access: image read, augmented, padded, text rendered, tokenised.

    Samples longer than ``max_length`` tokens are left out (never cut: a cut inside the image
    tokens breaks the model's placeholder check). ``lengths`` (estimated without reading the
    images) feed the token-budget batch sampler.
    """

    def __init__(
        self,
        samples: list[Sample],
        encoder: Any,
        boxes: BoxConvention,
        *,
        augment: Any = None,
        max_length: int | None = None,
    ) -> None:
        self.encoder = encoder
        self.boxes = boxes.with_processor(encoder.image_processor)
        self.augment = augment
        self.background = pad_colour(getattr(encoder.image_processor, "image_mean", None))
        kept: list[Sample] = []
        self.lengths: list[int] = []
        too_long = 0
        for sample in samples:
            length = encoder.estimate_length(sample.render(self.boxes), _image_size(sample))
            if max_length is not None and length > max_length:
                too_long += 1
                continue
            kept.append(sample)
            self.lengths.append(length)
        if too_long:
            log.warning("left out %d sample(s) longer than max_length=%d", too_long, max_length)
        if not kept:
            raise InputError(f"every sample is longer than max_length={max_length}")
        self.samples = kept

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        from rsgpt4v.raster import pad_to_square, read_rgb8

        sample = self.samples[index]
        if sample.image is None:
            return self.encoder.encode(sample.render(self.boxes))
        pixels = read_rgb8(sample.image)
        regions = None
        if self.augment is not None and sample.instruction is not None:
            pixels, regions = self.augment(pixels, sample.regions, text=sample.raw_text)
        height, width = pixels.shape[:2]
        turns = sample.render(self.boxes, image_size=(width, height), regions=regions)
        image = Image.fromarray(pixels)
        if self.boxes.padded:
            image = pad_to_square(image, self.background)
        return self.encoder.encode(turns, image)


def first_fit_groups(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices grouped first-fit decreasing so that each group's total stays within capacity.

    A sample longer than ``capacity`` gets a group of its own. Groups keep data order inside.
    """
    groups: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        target = next((g for g, free in enumerate(room) if free >= lengths[index]), None)
        if target is None:
            groups.append([])
            room.append(capacity)
            target = len(groups) - 1
        groups[target].append(index)
        room[target] -= lengths[index]
    return [sorted(group) for group in groups]


class PackedDataset:
    """Rows of several samples of a :class:`SampleDataset`, up to ``max_length`` tokens each.

    Samples are grouped from their estimated lengths and encoded on access, then joined by
    :func:`~rsgpt4v.finetune.packing.pack_samples`: positions restart per sample (3-D mRoPE
    positions from the model's ``get_rope_index`` for Qwen2/2.5-VL), each sample's first label
    is ignored, images follow in row order.
    """

    def __init__(self, dataset: SampleDataset, max_length: int) -> None:
        from rsgpt4v.finetune.packing import rope_index_for

        self.dataset = dataset
        self.groups = first_fit_groups(dataset.lengths, max_length)
        self.lengths = [sum(dataset.lengths[i] for i in group) for group in self.groups]
        self.rope_index = rope_index_for(dataset.encoder.config)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from rsgpt4v.finetune.packing import pack_samples

        return pack_samples([self.dataset[i] for i in self.groups[index]], self.rope_index)
