"""Grounding: Acc@0.25 / 0.5 / 0.7 and mean IoU, with one documented rule for several boxes.

Boxes are pixel ``(x1, y1, x2, y2)`` read from the answer by the same ``boxfmt`` parser the
export rendered them with. Per answer, predicted and true boxes are paired one to one by the
Hungarian algorithm maximising the summed IoU (``scipy.optimize.linear_sum_assignment``); boxes
left unpaired on either side score IoU 0. With ``k = max(#predicted, #true)``:

- the answer's IoU is ``sum(paired IoUs) / k``;
- its hit at threshold t is ``#(paired IoU >= t) / k``.

One true box and one predicted box give the usual 0/1 accuracy of RSVG; an answer with no box
scores 0; a duplicate or spurious box lowers the score instead of being ignored. Acc@t and mIoU
average these per-answer values. IoU is :func:`rsgpt4v.geometry.iou_matrix` (pycocotools'
``mask.iou``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from rsgpt4v.geometry import iou_matrix as geometry_iou_matrix

THRESHOLDS = (0.25, 0.5, 0.7)
Box = Sequence[float]


def iou_matrix(predicted: Sequence[Box], truth: Sequence[Box]) -> np.ndarray:
    """IoU of every predicted box (rows) with every true box (columns)."""
    to_xywh = lambda boxes: [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in boxes]  # noqa: E731
    return geometry_iou_matrix(to_xywh(predicted), to_xywh(truth))


def paired_ious(predicted: Sequence[Box], truth: Sequence[Box]) -> list[float]:
    """The IoUs of the one-to-one pairing with the largest total IoU."""
    ious = iou_matrix(predicted, truth)
    if ious.size == 0:
        return []
    rows, cols = linear_sum_assignment(ious, maximize=True)
    return [float(ious[r, c]) for r, c in zip(rows, cols, strict=True)]


def answer_scores(
    predicted: Sequence[Box], truth: Sequence[Box], thresholds: Sequence[float] = THRESHOLDS
) -> tuple[float, dict[float, float]]:
    """(IoU, {threshold: hit}) of one answer, by the rule of the module docstring."""
    k = max(len(predicted), len(truth))
    if k == 0:
        return 1.0, {t: 1.0 for t in thresholds}
    pairs = paired_ious(predicted, truth)
    return sum(pairs) / k, {t: sum(iou >= t for iou in pairs) / k for t in thresholds}


def grounding_scores(
    cases: Iterable[tuple[Sequence[Box], Sequence[Box]]],
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, object]:
    """``acc@t`` per threshold, ``miou``, ``n`` and ``no_box`` (answers without a box)."""
    n = no_box = 0
    iou_sum = 0.0
    hits = dict.fromkeys(thresholds, 0.0)
    for predicted, truth in cases:
        n += 1
        no_box += not predicted
        iou, hit = answer_scores(predicted, truth, thresholds)
        iou_sum += iou
        for t in thresholds:
            hits[t] += hit[t]
    scores: dict[str, object] = {f"acc@{t:g}": (hits[t] / n if n else None) for t in thresholds}
    scores.update({"miou": iou_sum / n if n else None, "n": n, "no_box": no_box})
    return scores
