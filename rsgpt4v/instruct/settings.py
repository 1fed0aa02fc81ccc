"""The settings of the rule ``instruct`` stage (light: the CLI builds its options from them;
the rules themselves are imported only when a value is checked)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import field_validator, model_validator

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.errors import InputError
from rsgpt4v.settings import StageSettings, option

if TYPE_CHECKING:
    from rsgpt4v.instruct.answerability import ModelInput


def parse_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    """``"counting,grounding"`` → a validated list; None → every rule task."""
    from rsgpt4v.instruct.rules import RULE_TASKS

    if tasks is None:
        return list(RULE_TASKS)
    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in names if t not in RULE_TASKS]
    if unknown or not names:
        raise InputError(
            f"unknown task {unknown[0] if unknown else ''!r}; known: {', '.join(RULE_TASKS)}"
        )
    return names


class RulesSettings(StageSettings):
    """What the rules ask, and for which model."""

    tasks: tuple[str, ...] | None = option(
        None,
        "--tasks",
        help="Comma-separated rule tasks (default all), e.g. counting,grounding,presence; an "
        "unknown name lists the known ones.",
        cli_type=str | None,
    )
    seed: int = option(0, "--seed", help="Seed for the choice of phrasings.")
    mix: Path | None = option(
        None,
        "--mix",
        help="YAML file of per-source and per-task weights and caps (docs/instructions.md, "
        "section Mixing).",
    )
    model_family: str | None = option(
        None,
        "--model-family",
        help="The model the data is for (llava, qwen2vl, qwen25vl, geochat, minigptv2, "
        "internvl, pixel): objects too small at its input size are not asked about, nor "
        "counted (docs/instructions.md, Answerability).",
    )
    input_size: int | None = option(
        None,
        "--input-size",
        help="Or: the longer side, in pixels, the model is shown images at.",
        ge=1,
    )
    completeness: Path | dict[str, LabelCompleteness] | None = option(
        None,
        "--completeness",
        help="YAML file overriding which classes each dataset labels exhaustively (exact "
        "counts and 'no' answers only for those; docs/instructions.md, Label completeness).",
        cli_type=Path | None,
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _known_tasks(cls, value: object) -> object:
        return None if value is None else tuple(parse_tasks(value))  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _one_input(self) -> RulesSettings:
        if self.model_family is not None and self.input_size is not None:
            raise InputError("give --model-family or --input-size, not both")
        self.model_input()  # an unknown family is an error naming the known ones
        return self

    def task_names(self) -> list[str]:
        return list(self.tasks) if self.tasks is not None else parse_tasks(None)

    def model_input(self) -> ModelInput:
        from rsgpt4v.instruct.answerability import ModelInput

        return ModelInput(self.model_family, self.input_size)
