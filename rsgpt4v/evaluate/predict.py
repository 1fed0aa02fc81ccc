"""Run a model over evaluation items: batched, greedy generation → predictions JSONL.

The model folder is anything ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (a
base model or a merged one); ``adapter`` adds a peft adapter on top (``PeftModel``). The model
is asked the way it was trained: the processor (chat template, image settings) comes from the
adapter folder that ``rsgpt4v finetune`` wrote when there is one, prompts are tokenised by that
template exactly as training tokenised them (one BOS), and the image is shown in the family's
frame (:mod:`rsgpt4v.families`: padded square for LLaVA-1.5, the run's ``max_pixels`` for
Qwen2.5-VL). Batches are padded on the left so that every row's answer starts at the same
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
from rsgpt4v.families import BoxConvention, pad_colour
from rsgpt4v.paths import ImageRoot
from rsgpt4v.schema import JsonlWriter

RUN_CONFIG = "finetune.yaml"  # written by rsgpt4v finetune next to its adapter/ folder
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


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


@dataclass(frozen=True)
class TrainedRun:
    """An ``rsgpt4v finetune`` run folder: what predict needs to ask its model as trained."""

    folder: Path
    model: Path
    adapter: Path
    boxes: BoxConvention
    held_out: Path


def trained_run(path: str | Path | None) -> TrainedRun | None:
    """The finetune run that ``path`` (a run folder or its ``adapter/``) belongs to, if any."""
    if path is None:
        return None
    path = Path(path)
    folder = path if (path / RUN_CONFIG).is_file() else path.parent
    if not (folder / RUN_CONFIG).is_file():
        return None
    from rsgpt4v.finetune.config import read_run_config

    config = read_run_config(folder)
    return TrainedRun(
        folder, Path(config.model), folder / "adapter", config.boxes, folder / "heldout.jsonl"
    )


def prompt_of(item: EvalItem, boxes: BoxConvention) -> str:
    """The question as the model sees it, boxes written in its family's convention."""
    return render_text(item.question, item, boxes)


def processor_folder(model_dir: str | Path, adapter: str | Path | None) -> Path:
    """Where the processor to prompt with is: the adapter's (training template and image
    settings, saved by ``rsgpt4v finetune``) when it has one, else the model's."""
    if adapter is not None and any((Path(adapter) / n).is_file() for n in PROCESSOR_FILES):
        return Path(adapter)
    return Path(model_dir)


def load_model(
    model_dir: str | Path, adapter: str | Path | None = None, *, device: str | None = None
) -> tuple[Any, Any]:
    """(model in eval mode, processor) from a local folder, with an optional peft adapter."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model folder not found", file=model_dir)
    if adapter is not None and not Path(adapter).is_dir():
        raise InputError("adapter folder not found", file=adapter)
    try:
        processor = AutoProcessor.from_pretrained(processor_folder(model_dir, adapter))
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype="auto")
    except (OSError, ValueError, ImportError) as error:
        raise RsgptError(f"cannot load a vision-language model from {model_dir}: {error}") from None
    if adapter is not None:
        model = with_adapter(model, Path(adapter))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    if getattr(processor, "chat_template", None) is None:
        raise RsgptError(f"the processor in {model_dir} has no chat template to build prompts")
    processor.tokenizer.padding_side = "left"
    return model, processor


def with_adapter(model: Any, adapter: Path) -> Any:
    """The model with a finetune adapter: peft's (LoRA, DoRA, QLoRA) or MoE-LoRA's own."""
    from rsgpt4v.finetune.moe_lora import CONFIG_NAME

    if (adapter / CONFIG_NAME).is_file():
        from safetensors.torch import load_file

        from rsgpt4v.finetune.methods import PROJECTOR_FILE
        from rsgpt4v.finetune.moe_lora import load_moe_lora

        load_moe_lora(model, adapter)
        if (adapter / PROJECTOR_FILE).is_file():  # a fully trained projector
            model.load_state_dict(load_file(str(adapter / PROJECTOR_FILE)), strict=False)
        return model
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter))


def prompt_inputs(processor: Any, images: Sequence[Any], prompts: Sequence[str]) -> Any:
    """The batch the model generates from: each prompt after its image, in the chat template,
    tokenised the way training tokenised conversations (the template writes BOS, once)."""
    conversations = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}],
            }
        ]
        for image, prompt in zip(images, prompts, strict=True)
    ]
    return processor.apply_chat_template(
        conversations,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True},
    )


def generate_answers(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    settings: GenerationSettings,
) -> list[str]:
    """One decoded answer per (image, prompt), generated as one left-padded batch."""
    import torch

    inputs = prompt_inputs(processor, images, prompts)
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


def load_image(item: EvalItem, image_root: ImageRoot, max_side: int | None) -> Any:
    """The item's image as an 8-bit RGB PIL image (any raster rasterio reads)."""
    from PIL import Image

    from rsgpt4v.raster import read_rgb8

    path = image_root.existing(item.image, entry=item.id)
    return Image.fromarray(read_rgb8(path, max_side=max_side))


def mean_colour(processor: Any) -> tuple[int, int, int]:
    """The colour LLaVA pads with: the image processor's mean (black when it has none)."""
    return pad_colour(getattr(getattr(processor, "image_processor", None), "image_mean", None))


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
    boxes: BoxConvention | None = None,
    settings: GenerationSettings | None = None,
    run_info: dict[str, Any] | None = None,
    progress: Callable[[Iterable[list[EvalItem]]], Iterable[list[EvalItem]]] | None = None,
) -> PredictSummary:
    """Answer every item with the model (or, with ``model_dir=None``, write the items only).

    ``boxes`` is the family's box convention the model was trained with: questions are written
    in it, images are shown in its frame (padded to a centred square for LLaVA-1.5), and
    evaluate reads the answers in it. A Qwen2.5-VL convention takes the processor's pixel
    budget when it sets none, so boxes are pixels of the image the model was shown.

    Beside OUTPUT, ``OUTPUT.run.json`` records the model, adapter, settings, box convention and
    the data versions given in ``run_info`` (benchmark, source file and its SHA-256).
    """
    settings = settings or GenerationSettings()
    boxes = boxes or BoxConvention()
    if settings.batch_size < 1 or settings.max_new_tokens < 1:
        raise InputError("batch size and max new tokens must be at least 1")
    if settings.max_side is not None and boxes.spec.style in ("qwen25vl", "pixel"):
        raise InputError(
            f"--max-side shrinks the image, so {boxes.family!r} boxes (pixels of the image as "
            "stored) would not match what the model sees; use it with a normalised box style"
        )
    output = Path(output)
    summary = PredictSummary(output=output, run_file=run_file(output))
    model = processor = None
    if model_dir is not None:
        if image_root is None:
            raise InputError("--image-root is needed to show the model its images")
        root = ImageRoot(Path(image_root))  # a folder, or an error naming it
        model, processor = load_model(model_dir, adapter)
        boxes = boxes.with_processor(processor.image_processor)
        background = mean_colour(processor)
    names = {
        "model": str(model_dir) if model_dir is not None else None,
        "adapter": str(adapter) if adapter is not None else None,
    }
    convention = boxes.as_fields()
    batches: Iterable[list[EvalItem]] = _batches(items, settings.batch_size)
    if progress is not None:
        batches = progress(batches)
    with JsonlWriter(output) as writer:
        for batch in batches:
            prompts = [prompt_of(item, boxes) for item in batch]
            answers: list[str | None] = [None] * len(batch)
            if model is not None:
                images = [load_image(i, root, settings.max_side) for i in batch]
                if boxes.padded:
                    from rsgpt4v.raster import pad_to_square

                    images = [pad_to_square(image, background) for image in images]
                answers = list(generate_answers(model, processor, images, prompts, settings))
            for item, prompt, answer in zip(batch, prompts, answers, strict=True):
                answered = {"prediction": answer, **convention, "prompt": prompt, **names}
                writer.write(Prediction.model_validate({**item.model_dump(), **answered}))
    summary.written = writer.count
    summary.settings = {
        **names,
        **convention,
        "generation": asdict(settings),
        "rsgpt4v": __version__,
        "predictions": writer.count,
        "versions": model_versions(model_dir, adapter),
        **(run_info or {}),
    }
    summary.run_file.write_text(json.dumps(summary.settings, indent=2) + "\n", encoding="utf-8")
    return summary


# small files that identify a model or adapter (hashing multi-GB weights would cost minutes)
VERSION_FILES = (
    "config.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "moe_lora_config.json",
    "moe_lora.safetensors",
)
FINETUNE_CONFIG = RUN_CONFIG


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
    boxes: BoxConvention | None = None,
    settings: GenerationSettings | None = None,
    progress: Callable[[Iterable[list[EvalItem]]], Iterable[list[EvalItem]]] | None = None,
) -> PredictSummary:
    """Predictions (or, without a model, the items) of a benchmark over ``source``.

    The run file records the benchmark, the split and the source file's SHA-256.
    """
    from rsgpt4v.evaluate.benchmarks import benchmark_items, get_benchmark

    boxes = boxes or BoxConvention()
    chosen = get_benchmark(benchmark)
    split = split if split is not None else chosen.split
    items = benchmark_items(
        benchmark,
        source,
        split=split,
        limit=limit,
        boxes=boxes,
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
        boxes=boxes,
        settings=settings,
        run_info=run_info,
        progress=progress,
    )
