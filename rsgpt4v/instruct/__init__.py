"""Instructions from records: rules (:mod:`rsgpt4v.instruct.stage`, offline and exact) and a
vision LLM (:mod:`rsgpt4v.instruct.llm`).

The names below are read from their modules on first use, so importing a light submodule (the
settings the CLI builds its options from) does not import the rules.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RULE_TASKS": "rsgpt4v.instruct.rules",
    "InstructionSummary": "rsgpt4v.instruct.stage",
    "RulesSettings": "rsgpt4v.instruct.settings",
    "RulesStage": "rsgpt4v.instruct.stage",
    "batches_with_facts": "rsgpt4v.instruct.stage",
    "check_partial_classes": "rsgpt4v.instruct.stage",
    "generate_instructions": "rsgpt4v.instruct.stage",
    "parse_tasks": "rsgpt4v.instruct.settings",
    "rule_context": "rsgpt4v.instruct.stage",
    "rule_lines": "rsgpt4v.instruct.stage",
    "dataset_vocabulary": "rsgpt4v.vocabulary",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rsgpt4v.instruct' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
