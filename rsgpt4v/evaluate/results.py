"""Results of one evaluation run as JSON and Markdown, and several runs side by side.

``results.json`` holds everything needed to tell two numbers apart: the model, adapter, box
style and generation settings (from the predictions' run file), the scoring options, and the
SHA-256 of every data file (the benchmark source, the predictions, the items file).
``results.md`` is the same as tables. :func:`compare_runs` puts the headline metrics of several
``results.json`` next to each other, one column per run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rsgpt4v import __version__
from rsgpt4v.errors import InputError
from rsgpt4v.evaluate.benchmarks import BENCHMARKS
from rsgpt4v.evaluate.metrics_vqa import VqaOptions
from rsgpt4v.evaluate.predictions import read_predictions, read_run_info, sha256_of
from rsgpt4v.evaluate.scoring import ScoringOptions, score_predictions

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
# nested breakdowns, shown as their own tables rather than as columns
BREAKDOWNS = ("per_type", "per_class", "unavailable", "ceiling")


def evaluate_predictions(
    predictions: str | Path,
    output_dir: str | Path,
    *,
    items: str | Path | None = None,
    box_style: str | None = None,
    bin_counts: bool | None = None,
    bin_areas: bool | None = None,
    meteor: bool = True,
) -> dict[str, Any]:
    """Score a predictions file; write ``results.json`` and ``results.md`` to ``output_dir``.

    RSVQA binning defaults to the benchmark's own (from the run file or the items' benchmark);
    ``bin_counts`` / ``bin_areas`` override it.
    """
    loaded = list(read_predictions(predictions, items))
    if not loaded:
        raise InputError("no predictions to evaluate: the file is empty", file=Path(predictions))
    if all(p.prediction is None for p in loaded):
        # scored, every item would count as a wrong answer: a wrong file, not a silent model
        raise InputError(
            "no predictions to evaluate: no line has a prediction (the --items-only file?)",
            file=Path(predictions),
        )
    # another system's answers have no run file; the items' (predict --items-only) tells the data
    run = read_run_info(predictions) or (read_run_info(items) if items is not None else {})
    benchmark = run.get("benchmark") or loaded[0].benchmark
    defaults = BENCHMARKS[benchmark].vqa if benchmark in BENCHMARKS else VqaOptions()
    vqa = VqaOptions(
        bin_counts=defaults.bin_counts if bin_counts is None else bin_counts,
        bin_areas=defaults.bin_areas if bin_areas is None else bin_areas,
    )
    options = ScoringOptions(vqa=vqa, box_style=box_style, meteor=meteor)
    data = dict(run.get("data") or {})
    data["predictions"] = {"path": str(predictions), "sha256": sha256_of(predictions)}
    if items is not None:
        data["items"] = {"path": str(items), "sha256": sha256_of(items)}
    first = loaded[0]
    result = {
        "run": {
            "name": run_name(run.get("model") or first.model, run.get("adapter") or first.adapter),
            "model": run.get("model") or first.model,
            "adapter": run.get("adapter") or first.adapter,
            "benchmark": benchmark,
            "split": run.get("split"),
            "box_style": box_style or run.get("box_style") or first.box_style,
            "generation": run.get("generation"),
            "versions": run.get("versions") or {},
            "data": data,
        },
        "scoring": {"vqa": asdict(vqa), "meteor": meteor, "box_style_override": box_style},
        "rsgpt4v": __version__,
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "items": len(loaded),
        "tasks": score_predictions(loaded, options),
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_JSON).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / RESULTS_MD).write_text(results_markdown(result), encoding="utf-8")
    return result


def run_name(model: str | None, adapter: str | None) -> str:
    """A short label for a run: model folder name, plus the adapter's."""
    name = Path(model).name if model else "unknown model"
    return f"{name} + {Path(adapter).name}" if adapter else name


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def headline(scores: dict[str, Any]) -> dict[str, Any]:
    """A task's flat metrics (numbers and the tokenizer), without nested breakdowns."""
    return {k: v for k, v in scores.items() if k not in BREAKDOWNS and k != "metric"}


def results_markdown(result: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    run = result["run"]
    lines = [f"# Evaluation: {run['name']}", ""]
    facts = [
        ("model", run["model"]),
        ("adapter", run["adapter"]),
        ("benchmark", run["benchmark"]),
        ("split", run["split"]),
        ("box style", run["box_style"]),
        ("generation", json.dumps(run["generation"]) if run["generation"] else None),
        ("scoring", json.dumps(result["scoring"])),
        ("items", result["items"]),
        ("rsgpt4v", result["rsgpt4v"]),
        ("evaluated at", result["evaluated_at"]),
    ]
    files = {**run.get("versions", {}), **{f"data: {k}": v for k, v in run["data"].items()}}
    facts += [(name, f"{v['path']} (sha256 {v['sha256']})") for name, v in files.items()]
    lines += _table(["", ""], facts)
    for task, scores in result["tasks"].items():
        lines += [f"## {task} ({scores['metric']})", ""]
        flat = headline(scores)
        lines += _table(list(flat), [list(flat.values())])
        for key, title in (("per_type", "question type"), ("per_class", "class")):
            if scores.get(key):
                columns = list(next(iter(scores[key].values())))
                rows = [[name, *row.values()] for name, row in scores[key].items()]
                lines += _table([title, *columns], rows)
        if scores.get("ceiling"):
            lines += ["Ceiling: what a perfect model scores in this box convention (its grid):", ""]
            ceiling = scores["ceiling"]
            lines += _table(list(ceiling), [list(ceiling.values())])
        for metric, reason in (scores.get("unavailable") or {}).items():
            lines += [f"{metric} unavailable: {reason}", ""]
    return "\n".join(lines)


def load_results(path: str | Path) -> dict[str, Any]:
    """A ``results.json`` (or the folder holding one), checked to have what a comparison reads.

    The file may come from elsewhere or be cut short; anything malformed is an InputError naming
    the file (and the entry), never a traceback halfway through the comparison.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        raise InputError("results file not found", file=path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text (byte {error.start})", file=path) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error.msg})", file=path, line=error.lineno) from None
    except RecursionError:
        raise InputError("not valid JSON (nested too deeply)", file=path) from None
    problem = _results_problem(result)
    if problem is not None:
        entry, reason = problem
        raise InputError(f"not an rsgpt4v results.json: {reason}", file=path, entry=entry)
    return result


def _results_problem(result: object) -> tuple[str | None, str] | None:
    """(entry, what is wrong) with what :func:`compare_runs` reads, or None when it is sound."""
    if not isinstance(result, dict):
        return None, f"expected a JSON object, got {type(result).__name__}"
    run, tasks = result.get("run"), result.get("tasks")
    if not isinstance(run, dict):
        return "run", "no run object"
    if not isinstance(run.get("name"), str):
        return "run.name", "the run has no name"
    if not isinstance(tasks, dict):
        return "tasks", "no tasks object"
    for task, scores in tasks.items():
        if not isinstance(scores, dict):
            return f"tasks.{task}", "a task's scores are not an object"
    return None


def _source_digest(run: dict[str, Any]) -> str | None:
    """The first 12 hex digits of the benchmark source's SHA-256, when the run records it."""
    data = run.get("data")
    source = data.get("source") if isinstance(data, dict) else None
    digest = source.get("sha256") if isinstance(source, dict) else None
    return digest[:12] if isinstance(digest, str) else None


def compare_runs(paths: Sequence[str | Path]) -> tuple[str, dict[str, Any]]:
    """Markdown and JSON tables of several runs: one row per task metric, one column per run.

    Rows say which data each run saw (the source's SHA-256, shortened), so numbers computed on
    different data are not compared unawares.
    """
    results = [load_results(p) for p in paths]
    names = [f"{r['run']['name']} ({Path(p).name})" for r, p in zip(results, paths, strict=True)]
    table: dict[str, list[Any]] = {}
    for column, result in enumerate(results):
        rows = {"benchmark": result["run"].get("benchmark"), "items": result.get("items")}
        rows["data sha256"] = _source_digest(result["run"])
        for task, scores in result["tasks"].items():
            for metric, value in headline(scores).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    rows[f"{task} / {metric}"] = value
        for key, value in rows.items():
            table.setdefault(key, [None] * len(results))[column] = value
    lines = ["# Runs compared", ""]
    lines += _table(["", *names], [[key, *values] for key, values in table.items()])
    return "\n".join(lines), {"runs": names, "rows": table}
