"""The predictions file: one JSON line per evaluation item, with the model's answer.

``rsgpt4v predict`` writes it; any other system may write the same JSONL. A line is an
:class:`~rsgpt4v.evaluate.references.EvalItem` (id, record_id, image, task, metric, question type,
question, references, true boxes / count / class) plus the answer and where it came from:
``prediction``, ``model``, ``adapter``, the ``box_style`` the model writes boxes in and the
``prompt`` it was shown. ``predict --items-only`` writes the lines without answers, for another
system to fill in. A system may also write only ``{"id", "prediction"}`` lines and pass the items
file to ``evaluate --items``: the two are joined by ``id``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rsgpt4v.errors import InputError
from rsgpt4v.evaluate.references import EvalItem
from rsgpt4v.families import BoxConvention
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.schema import read_jsonl

RUN_SUFFIX = ".run.json"


class Prediction(EvalItem):
    """An item with a model's answer (None: not answered yet, scored as an empty answer)."""

    prediction: str | None = None
    model: str | None = None
    adapter: str | None = None
    box_style: str = Field(default="llava", description="Model family whose boxes it writes.")
    square_pad: bool | None = Field(default=None, description="None: the family's frame.")
    box_decimals: int | None = None
    max_pixels: int | None = Field(default=None, description="qwen25vl: the processor's budget.")
    min_pixels: int | None = None
    patch_factor: int | None = None
    prompt: str | None = Field(default=None, description="The question as the model saw it.")

    @property
    def boxes_convention(self) -> BoxConvention:
        """How the answers write boxes (:mod:`rsgpt4v.families`)."""
        return BoxConvention.from_fields(self.model_dump())


def run_file(predictions: str | Path) -> Path:
    """The side file holding the run's settings and data versions (``PRED.jsonl.run.json``)."""
    predictions = Path(predictions)
    return predictions.with_name(predictions.name + RUN_SUFFIX)


def read_run_info(predictions: str | Path) -> dict[str, object]:
    """The run side file written by ``predict`` (empty for predictions made elsewhere)."""
    path = run_file(predictions)
    if not path.is_file():
        return {}
    info = load_json(path, what="run file")
    if not isinstance(info, dict):
        raise InputError("expected a JSON object", file=path)
    return info


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, the version recorded for every data file of a run."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_predictions(path: str | Path, items: str | Path | None = None) -> Iterator[Prediction]:
    """Predictions, complete lines or ``{"id", "prediction"}`` lines joined to ``items``.

    With ``items``, every item is yielded (an item without a prediction line has
    ``prediction=None``, so a skipped question counts against the model) and a prediction for
    an id that is not an item is an error.
    """
    if items is None:
        yield from read_jsonl(path, Prediction)
        return
    by_id = {item.id: item for item in read_jsonl(items, Prediction)}
    if not by_id:
        raise InputError("no items to join the predictions to", file=items)
    answers = dict(_answer_lines(Path(path)))
    if not answers:
        # every item would be scored as unanswered: a wrong file, not a model that said nothing
        raise InputError("no predictions to evaluate: the file has no answer lines", file=path)
    unknown = sorted(set(answers) - set(by_id))
    if unknown:
        raise InputError(
            f"{len(unknown)} predictions name no item of {items}, e.g. {unknown[0]!r}", file=path
        )
    for item_id, item in by_id.items():
        yield item.model_copy(update=answers.get(item_id, {}))


class AnswerLine(BaseModel):
    """A line of another system's answers: the item id and what it said (joined to items)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    prediction: str | None = None
    model: str | None = None
    adapter: str | None = None
    box_style: str | None = None
    square_pad: bool | None = None
    box_decimals: int | None = None
    max_pixels: int | None = None
    min_pixels: int | None = None
    patch_factor: int | None = None


def _answer_lines(path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """(id, the fields it sets) of each line of a file that may hold only id and prediction."""
    for line in read_jsonl(path, AnswerLine):
        yield line.id, line.model_dump(exclude_unset=True, exclude_none=True, exclude={"id"})
