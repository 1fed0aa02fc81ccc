"""Score predictions task by task, each with the metrics of its family.

Results are grouped by the items' ``task`` (``vqa``, ``grounding``, ``brief_caption``, …) and
every task is scored by its metric family (``EvalItem.metric``). An item without a prediction
is scored as an empty answer: a skipped question counts against the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rsgpt4v.errors import BoxFormatError, InputError
from rsgpt4v.evaluate.metrics_caption import caption_scores
from rsgpt4v.evaluate.metrics_classification import classification_scores, predicted_class
from rsgpt4v.evaluate.metrics_count import count_scores
from rsgpt4v.evaluate.metrics_grounding import grounding_scores
from rsgpt4v.evaluate.metrics_vqa import VqaCase, VqaOptions, vqa_scores
from rsgpt4v.evaluate.predictions import Prediction
from rsgpt4v.evaluate.references import render_text
from rsgpt4v.families import BoxConvention


@dataclass(frozen=True)
class ScoringOptions:
    """Choices that change scores, recorded with every result."""

    vqa: VqaOptions = field(default_factory=VqaOptions)
    box_style: str | None = None  # overrides the predictions' own box_style (family)
    meteor: bool = True

    def boxes(self, prediction: Prediction) -> BoxConvention:
        """The box convention to read ``prediction`` in."""
        convention = prediction.boxes_convention
        if self.box_style is None or self.box_style == convention.family:
            return convention
        return BoxConvention(self.box_style)


Box = tuple[float, float, float, float]


def predicted_boxes(prediction: Prediction, boxes: BoxConvention) -> list[Box]:
    """The boxes of an answer, pixel ``x1 y1 x2 y2`` of the item's image."""
    try:
        found = boxes.view(*prediction.image_size).parse(prediction.prediction or "")
    except BoxFormatError as error:
        raise InputError(f"item {prediction.id}: {error}") from None
    return [(b.x1, b.y1, b.x2, b.y2) for b in found]


def perfect_boxes(prediction: Prediction, boxes: BoxConvention) -> list[Box]:
    """The true boxes as a perfect model of this convention writes them (its grid's best)."""
    try:
        view = boxes.view(*prediction.image_size)
        return [view.round_trip(box) for box in prediction.boxes]
    except BoxFormatError as error:
        raise InputError(f"item {prediction.id}: {error}") from None


def score_task(
    family: str, predictions: list[Prediction], options: ScoringOptions
) -> dict[str, object]:
    """The scores of one task's predictions under its metric family."""

    def answer(p: Prediction) -> str:
        return p.prediction or ""

    if family == "caption":
        references = {
            p.id: [render_text(r, p, options.boxes(p), answer=True) for r in p.references]
            for p in predictions
        }
        result = caption_scores(
            references, {p.id: answer(p) for p in predictions}, meteor=options.meteor
        )
        return result.as_dict()
    if family == "vqa":
        cases = (VqaCase(answer(p), p.references, p.question_type) for p in predictions)
        return vqa_scores(cases, options.vqa)
    if family == "grounding":
        scores = grounding_scores(
            (predicted_boxes(p, options.boxes(p)), p.boxes) for p in predictions
        )
        # What a model that answers every box perfectly, in its own box text, would score.
        ceiling = grounding_scores(
            (perfect_boxes(p, options.boxes(p)), p.boxes) for p in predictions
        )
        scores["ceiling"] = {k: v for k, v in ceiling.items() if k not in ("n", "no_box")}
        return scores
    if family == "counting":
        return count_scores((answer(p), p.count) for p in predictions if p.count is not None)
    if family == "classification":
        classes = sorted({p.label for p in predictions if p.label})
        return classification_scores(
            (predicted_class(answer(p), classes, p.question), p.label)
            for p in predictions
            if p.label
        )
    raise InputError(f"unknown metric family {family!r}")


def score_predictions(
    predictions: Iterable[Prediction], options: ScoringOptions | None = None
) -> dict[str, dict[str, object]]:
    """Scores by task: each task's family, its item count, unanswered items and metrics."""
    options = options or ScoringOptions()
    by_task: dict[str, list[Prediction]] = defaultdict(list)
    family_of: dict[str, str] = {}
    for prediction in predictions:
        family = family_of.setdefault(prediction.task, prediction.metric)
        if family != prediction.metric:
            raise InputError(
                f"task {prediction.task!r} is scored as {family} and as {prediction.metric} "
                f"(item {prediction.id}); one task needs one metric family"
            )
        by_task[prediction.task].append(prediction)
    results = {}
    for task in sorted(by_task):
        items = by_task[task]
        unanswered = sum(p.prediction is None for p in items)
        scores = score_task(family_of[task], items, options)
        results[task] = {"metric": family_of[task], "unanswered": unanswered, **scores}
    return results
