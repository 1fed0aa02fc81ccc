"""The settings of the ``convert`` stage (light: the CLI builds its options from them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from rsgpt4v.settings import StageSettings, key_values, option


class ConvertSettings(StageSettings):
    split: str | None = option(None, "--split", help="Convert only this split.")
    captions: Path | None = option(
        None, "--captions", help="JSON object mapping image paths (or stems) to caption lists."
    )
    options: dict[str, str] = option(
        {},
        "-O",
        "--option",
        help="Converter option KEY=VALUE (repeatable), e.g. labels=hbb.",
        cli_type=list[str],
    )
    category_field: str | None = option(
        None,
        "--category-field",
        help="geo: the label attribute holding the class (same as -O category_field=NAME).",
    )
    skip_bad: bool = option(
        False, "--skip-bad", help="Skip bad items and list them in OUTPUT.rejects.jsonl."
    )

    _options = field_validator("options", mode="before")(key_values)

    def converter_options(self) -> dict[str, str]:
        extra = {"category_field": self.category_field} if self.category_field else {}
        return self.options | extra
