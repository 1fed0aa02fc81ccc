"""The JSON replies each pass asks the model for, as pydantic models.

Each model doubles as the ``response_format`` JSON schema sent to servers with structured output
(strict mode: every field required, no extra keys, at most three levels deep) and as the parser
of the reply text, so what is asked for and what is accepted cannot drift apart.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectNote(_Reply):
    id: int = Field(description="The object's id in the table.")
    attributes: list[str] = Field(description="Short visual attribute phrases.")
    description: str = Field(description="One or two sentences; other objects as <ref:N>.")


class Relation(_Reply):
    subject: int
    predicate: str = Field(description="e.g. 'parked beside', 'north of', 'larger than'.")
    object: int


class LocalReply(_Reply):
    """Local pass: fine-grained attributes of each object and relations between objects."""

    objects: list[ObjectNote]
    relations: list[Relation]

    def texts(self) -> list[str]:
        return [t for o in self.objects for t in (o.description, *o.attributes)] + [
            r.predicate for r in self.relations
        ]

    def ids(self) -> list[int]:
        return [o.id for o in self.objects] + [
            i for r in self.relations for i in (r.subject, r.object)
        ]


class GlobalReply(_Reply):
    """Global pass: one detailed description of the whole scene."""

    description: str

    def texts(self) -> list[str]:
        return [self.description]

    def ids(self) -> list[int]:
        return []


class Turn(_Reply):
    question: str
    answer: str


class DialogueReply(_Reply):
    """Multi-turn pass: a 3-5 turn reasoning dialogue (the turn count is checked after parsing:
    strict structured output does not accept length bounds on lists)."""

    turns: list[Turn]

    def texts(self) -> list[str]:
        return [t for turn in self.turns for t in (turn.question, turn.answer)]

    def ids(self) -> list[int]:
        return []


class AnswerReply(_Reply):
    """One answer (the one-request-per-question baseline of bench/llm.py)."""

    answer: str

    def texts(self) -> list[str]:
        return [self.answer]

    def ids(self) -> list[int]:
        return []
