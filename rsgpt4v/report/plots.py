"""The report's figures as PNG files, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rsgpt4v.report.stats import ReportStats

MAX_BARS = 30  # classes beyond the most frequent ones are summed into "other"


def write_plots(stats: ReportStats, folder: Path) -> dict[str, str]:
    """Write every figure into ``folder``; return {figure name: file name} of those written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "tasks": (_bars, _totals(stats.per_task), "Instructions per task"),
        "sources": (_bars, _totals(stats.per_source), "Instructions per source"),
        "object_classes": (_bars, stats.object_classes, "Labelled objects per class"),
        "region_classes": (_bars, stats.region_classes, "Boxes referred to per class"),
        "reasons": (_bars, stats.reasons, "Rejections per reason"),
    }
    written = {}
    for name, (draw, data, title) in figures.items():
        if not data:
            continue
        figure = draw(plt, data, title)
        written[name] = _save(plt, figure, folder / f"{name}.png")
    histograms = {
        "box_sizes": (
            {"labelled objects": stats.object_sizes, "referred boxes": stats.region_sizes},
            "Box size (square root of area, pixels)",
            True,
        ),
        "answer_lengths": ({"answers": stats.answer_words}, "Answer length (words)", False),
    }
    for name, (series, title, log) in histograms.items():
        if not any(len(values) for values in series.values()):
            continue
        figure = _histogram(plt, series, title, log)
        written[name] = _save(plt, figure, folder / f"{name}.png")
    return written


def _totals(table: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    return {key: sum(counts.values()) for key, counts in table.items()}


def _bars(plt, counts: Mapping[str, int], title: str):
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > MAX_BARS:
        rest = sum(n for _, n in ordered[MAX_BARS - 1 :])
        ordered = [*ordered[: MAX_BARS - 1], ("other", rest)]
    labels, values = zip(*ordered, strict=True)
    figure, axes = plt.subplots(figsize=(7, 0.3 * len(labels) + 1.2), dpi=100)
    axes.barh(range(len(labels)), values, color="#3b7dd8")
    axes.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("count")
    return figure


def _histogram(plt, series: Mapping[str, Sequence[float]], title: str, log: bool):
    import numpy as np

    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
    present = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}
    values = np.concatenate(list(present.values()))
    low, high = float(values.min()), float(values.max())
    if log and low > 0 and high > low:
        bins = np.geomspace(low, high, 30)
        axes.set_xscale("log")
    else:
        bins = np.linspace(low, high if high > low else low + 1, 30)
    for label, data in present.items():
        axes.hist(data, bins=bins, alpha=0.6, label=label)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel("count")
    if len(present) > 1:
        axes.legend(fontsize=8)
    return figure


def _save(plt, figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path.name
