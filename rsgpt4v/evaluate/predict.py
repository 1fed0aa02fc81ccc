"""Run a model over evaluation items: batched, greedy generation → predictions JSONL.

The model folder is anything ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (a
base model or a merged one); ``adapter`` adds a peft adapter on top (``PeftModel``). Prompts are
rendered with the processor's chat template (one image, then the question with boxes in the
model's style); batches are padded on the left so that every row's answer starts at the same
position. torch, transformers and peft are imported only here, when a model is run.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v import __version__
from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.evaluate.predictions import Prediction, run_file, sha256_of
from rsgpt4v.evaluate.references import EvalItem, render_text
from rsgpt4v.exporters.common import PIXEL_STYLES
from rsgpt4v.schema import JsonlWriter


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated; recorded in the run file (greedy unless asked otherwise)."""

    batch_size: int = 8
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    num_beams: int = 1
    max_side: int | None = None  # longer image side given to the processor (None: as stored)


@dataclass
class PredictSummary:
    output: Path
    run_file: Path
    written: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


def prompt_of(item: EvalItem, box_style: str, square_pad: bool = False) -> str:
    """The question as the model sees it, boxes written in its style."""
    return render_text(item.question, item, box_style, square_pad=square_pad)


def load_model(
    model_dir: str | Path, adapter: str | Path | None = None, *, device: str | None = None
) -> tuple[Any, Any]:
    """(model in eval mode, processor) from a local folder, with an optional peft adapter."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model folder not found", file=model_dir)
    try:
        processor = AutoProcessor.from_pretrained(model_dir)
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype="auto")
    except (OSError, ValueError, ImportError) as error:
        raise RsgptError(f"cannot load a vision-language model from {model_dir}: {error}") from None
    if adapter is not None:
        from peft import PeftModel

        if not Path(adapter).is_dir():
            raise InputError("adapter folder not found", file=adapter)
        model = PeftModel.from_pretrained(model, str(adapter))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    if getattr(processor, "chat_template", None) is None:
        raise RsgptError(f"the processor in {model_dir} has no chat template to build prompts")
    processor.tokenizer.padding_side = "left"
    return model, processor


def generate_answers(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    settings: GenerationSettings,
) -> list[str]:
    """One decoded answer per (image, prompt), generated as one left-padded batch."""
    import torch

    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for p in prompts
    ]
    inputs = processor(text=texts, images=list(images), padding=True, return_tensors="pt")
    inputs = inputs.to(model.device, dtype=model.dtype)  # pixel values in the weights' dtype
    sampling = {"temperature": settings.temperature} if settings.do_sample else {}
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            num_beams=settings.num_beams,
            pad_token_id=processor.tokenizer.pad_token_id,
            **sampling,
        )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def load_image(item: EvalItem, image_root: Path, max_side: int | None) -> Any:
    """The item's image as an 8-bit RGB PIL image (any raster rasterio reads)."""
    from PIL import Image

    from rsgpt4v.raster import read_rgb8

    path = image_root / item.image
    if not path.is_file():
        raise InputError(f"image of item {item.id} not found", file=path)
    return Image.fromarray(read_rgb8(path, max_side=max_side))


def mean_colour(processor: Any) -> tuple[int, int, int]:
    """The image processor's mean as an RGB colour (black when it has none)."""
    mean = getattr(getattr(processor, "image_processor", None), "image_mean", None) or (0, 0, 0)
    return tuple(round(255 * float(v)) for v in list(mean)[:3])  # type: ignore[return-value]


def _batches(items: Iterable[EvalItem], size: int) -> Iterator[list[EvalItem]]:
    batch: list[EvalItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_predictions(
    items: Iterable[EvalItem],
    output: str | Path,
    *,
    model_dir: str | Path | None,
    adapter: str | Path | None = None,
    image_root: str | Path | None = None,
    box_style: str = "llava",
    square_pad: bool = False,
    settings: GenerationSettings | None = None,
    run_info: dict[str, Any] | None = None,
    progress: Callable[[Iterable[list[EvalItem]]], Iterable[list[EvalItem]]] | None = None,
) -> PredictSummary:
    """Answer every item with the model (or, with ``model_dir=None``, write the items only).

    With ``square_pad`` the model is shown each image padded to a centred square and boxes are
    relative to that square (LLaVA-1.5, and rsgpt4v.finetune's ``llava`` family).

    Beside OUTPUT, ``OUTPUT.run.json`` records the model, adapter, settings, box style and the
    data versions given in ``run_info`` (benchmark, source file and its SHA-256).
    """
    settings = settings or GenerationSettings()
    if settings.batch_size < 1 or settings.max_new_tokens < 1:
        raise InputError("batch size and max new tokens must be at least 1")
    if settings.max_side is not None and box_style in PIXEL_STYLES:
        raise InputError(
            f"--max-side shrinks the image, so {box_style!r} boxes (pixels of the image as "
            "stored) would not match what the model sees; use it with a normalised box style"
        )
    output = Path(output)
    summary = PredictSummary(output=output, run_file=run_file(output))
    model = processor = None
    if model_dir is not None:
        if image_root is None:
            raise InputError("--image-root is needed to show the model its images")
        model, processor = load_model(model_dir, adapter)
        background = mean_colour(processor)
    names = {
        "model": str(model_dir) if model_dir is not None else None,
        "adapter": str(adapter) if adapter is not None else None,
    }
    batches: Iterable[list[EvalItem]] = _batches(items, settings.batch_size)
    if progress is not None:
        batches = progress(batches)
    with JsonlWriter(output) as writer:
        for batch in batches:
            prompts = [prompt_of(item, box_style, square_pad) for item in batch]
            answers: list[str | None] = [None] * len(batch)
            if model is not None:
                images = [load_image(i, Path(image_root), settings.max_side) for i in batch]
                if square_pad:
                    from rsgpt4v.raster import pad_to_square

                    images = [pad_to_square(image, background) for image in images]
                answers = list(generate_answers(model, processor, images, prompts, settings))
            for item, prompt, answer in zip(batch, prompts, answers, strict=True):
                answered = {
                    "prediction": answer,
                    "box_style": box_style,
                    "square_pad": square_pad,
                    "prompt": prompt,
                    **names,
                }
                writer.write(Prediction.model_validate({**item.model_dump(), **answered}))
    summary.written = writer.count
    summary.settings = {
        **names,
        "box_style": box_style,
        "square_pad": square_pad,
        "generation": asdict(settings),
        "rsgpt4v": __version__,
        "predictions": writer.count,
        "versions": model_versions(model_dir, adapter),
        **(run_info or {}),
    }
    summary.run_file.write_text(json.dumps(summary.settings, indent=2) + "\n", encoding="utf-8")
    return summary


# small files that identify a model or adapter (hashing multi-GB weights would cost minutes)
VERSION_FILES = ("config.json", "adapter_config.json", "adapter_model.safetensors")
FINETUNE_CONFIG = "finetune.yaml"  # written by rsgpt4v finetune next to its adapter/ folder


def model_versions(
    model_dir: str | Path | None, adapter: str | Path | None
) -> dict[str, dict[str, str]]:
    """SHA-256 of the files that identify the model and adapter, and of the finetune config
    that made the adapter when it sits in an ``rsgpt4v finetune`` run folder."""
    found: dict[str, dict[str, str]] = {}
    for role, folder in (("model", model_dir), ("adapter", adapter)):
        if folder is None:
            continue
        paths = [Path(folder) / name for name in VERSION_FILES]
        if role == "adapter":
            paths.append(Path(folder).parent / FINETUNE_CONFIG)
        for path in paths:
            if path.is_file():
                found[f"{role}: {path.name}"] = data_version(path)
    return found


def data_version(path: str | Path) -> dict[str, str]:
    """A data file's path and SHA-256, as recorded in run files and results."""
    return {"path": str(path), "sha256": sha256_of(path)}


def predict_benchmark(
    benchmark: str,
    source: str | Path,
    output: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    model_dir: str | Path | None = None,
    adapter: str | Path | None = None,
    image_root: str | Path | None = None,
    box_style: str = "llava",
    square_pad: bool = False,
    settings: GenerationSettings | None = None,
    progress: Callable[[Iterable[list[EvalItem]]], Iterable[list[EvalItem]]] | None = None,
) -> PredictSummary:
    """Predictions (or, without a model, the items) of a benchmark over ``source``.

    The run file records the benchmark, the split and the source file's SHA-256.
    """
    from rsgpt4v.boxfmt import STYLES
    from rsgpt4v.evaluate.benchmarks import benchmark_items, get_benchmark

    if box_style not in STYLES:
        raise InputError(f"unknown box style {box_style!r}; known: {', '.join(STYLES)}")
    chosen = get_benchmark(benchmark)
    split = split if split is not None else chosen.split
    items = benchmark_items(
        benchmark,
        source,
        split=split,
        limit=limit,
        box_style=box_style,
        square_pad=square_pad,
        image_root=image_root,
    )
    first = next(items, None)
    if first is None:
        raise InputError(f"no {benchmark} items of split {split!r}", file=Path(source))
    run_info = {
        "benchmark": benchmark,
        "split": split,
        "data": {"source": data_version(source)},
    }
    return write_predictions(
        itertools.chain([first], items),
        output,
        model_dir=model_dir,
        adapter=adapter,
        image_root=image_root,
        box_style=box_style,
        square_pad=square_pad,
        settings=settings,
        run_info=run_info,
        progress=progress,
    )
