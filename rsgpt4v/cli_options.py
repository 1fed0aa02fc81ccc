"""Command-line options made from stage settings models (:mod:`rsgpt4v.settings`).

``@settings_options(on_error, tile=TileSettings)`` gives a command one typer option per
:func:`~rsgpt4v.settings.option` field of each model (its flags, help and default) and calls it
with the model built from them, so a flag, its help and its validation are declared once, on the
settings field. Fields of the same name in two models are one option that sets both. A value the
model refuses is a usage error naming the flag (exit status 2), like typer's own checks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from rsgpt4v.errors import RsgptError
from rsgpt4v.settings import flags_of

F = TypeVar("F", bound=Callable[..., Any])
#: The default of a command's settings parameter: the decorator builds the model from the
#: options (``settings: TileSettings = FROM_OPTIONS``).
FROM_OPTIONS: Any = object()


def settings_options(
    on_error: Callable[[RsgptError], None], **models: type[BaseModel]
) -> Callable[[F], F]:
    """Decorate a command whose parameters named like ``models``' keys take the built models;
    ``on_error`` reports an error a model's checks raise (the CLI's one-line error)."""

    def decorate(command: F) -> F:
        options = _option_parameters(models)
        parameters: list[inspect.Parameter] = []  # the options where the models' parameters are
        for parameter in inspect.signature(command, eval_str=True).parameters.values():
            if parameter.name not in models:
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            elif not any(option in parameters for option in options.values()):
                parameters += options.values()

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            built = {}
            for key, model in models.items():
                try:
                    built[key] = _build(model, values)
                except RsgptError as error:
                    on_error(error)
            given = {name: value for name, value in values.items() if name not in options}
            return command(**given, **built)

        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        del run.__wrapped__  # typer reads the signature above, not the command's
        return run  # type: ignore[return-value]

    return decorate


def _option_parameters(models: dict[str, type[BaseModel]]) -> dict[str, inspect.Parameter]:
    parameters: dict[str, inspect.Parameter] = {}
    for model in models.values():
        for name, info in model.model_fields.items():
            flags = flags_of(model, name)
            if not flags or name in parameters:
                continue
            cli_type = _cli_type(model, name)
            # a field read as another type on the command line keeps its own default
            default = None if cli_type is not None else info.default
            option = typer.Option(default, *flags, help=info.description)
            parameters[name] = inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=option,
                annotation=cli_type if cli_type is not None else info.annotation,
            )
    return parameters


def _cli_type(model: type[BaseModel], name: str) -> Any:
    extra = model.model_fields[name].json_schema_extra
    return extra.get("cli_type") if isinstance(extra, dict) else None


def _build(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """The model from the command line's values; a refused value names its flag."""
    fields = {}
    for name in model.model_fields:
        if not flags_of(model, name) or name not in values:
            continue
        value = values[name]
        if _cli_type(model, name) is not None and value in (None, [], ()):
            continue  # not given: the field's own default
        fields[name] = value
    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        flags = flags_of(model, name) if name in model.model_fields else []
        raise typer.BadParameter(first["msg"], param_hint=_hint(flags)) from None
    except RsgptError as error:  # a model's own check; a usage error when it names its option
        named = [flags for flags in map(partial(flags_of, model), fields) if _names(error, flags)]
        if named:
            raise typer.BadParameter(str(error), param_hint=_hint(named[0])) from None
        raise


def _hint(flags: list[str]) -> str | None:
    return "/".join(f"'{flag}'" for flag in flags) or None


def _names(error: RsgptError, flags: list[str]) -> bool:
    """Whether the error's message starts with one of the flags (``--timeout must be…``)."""
    return any(str(error).startswith(flag.split("/")[0] + " ") for flag in flags)
