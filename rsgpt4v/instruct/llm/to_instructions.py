"""Accepted replies → :class:`rsgpt4v.schema.Instruction` rows with their provenance.

Text keeps the model's ``<ref:N>`` placeholders; the regions are the labelled boxes of the ids the
text refers to, so boxes always come from the labels, never from the model. Every instruction's
``source`` says ``generator="llm"`` and carries the model, prompt version, request hash, usage and
cost of the request that wrote it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from rsgpt4v.instruct.llm.pricing import Usage
from rsgpt4v.instruct.llm.replies import DialogueReply, GlobalReply, LocalReply
from rsgpt4v.schema import REF, Instruction, Message, Record, Region, Source, trusted

OBJECT_QUESTIONS = (
    "Describe <ref:{id}> in detail.",
    "What does <ref:{id}> look like?",
    "Give a fine-grained description of the object at <ref:{id}>.",
)
RELATION_QUESTIONS = (
    "How is <ref:{a}> related to <ref:{b}>?",
    "What is the relation between <ref:{a}> and <ref:{b}>?",
)
DESCRIPTION_QUESTIONS = (
    "Describe this image in detail.",
    "Give a detailed description of the scene.",
    "What does this remote-sensing image show? Describe it thoroughly.",
)


@dataclass(frozen=True)
class Provenance:
    """Where a reply came from; becomes the instructions' ``source``."""

    model: str
    prompt_version: str
    request_hash: str
    usage: Usage
    cost_usd: float
    template: str
    _source: list[Source] = field(default_factory=list, compare=False, repr=False)

    def source(self) -> Source:
        """The ``source`` of every instruction of this reply (built once, shared)."""
        if not self._source:
            self._source.append(self._make_source())
        return self._source[0]

    def _make_source(self) -> Source:
        return Source(
            generator="llm",
            template=self.template,
            model=self.model,
            prompt_version=self.prompt_version,
            request_hash=self.request_hash,
            usage=self.usage.as_dict(),
            cost_usd=round(self.cost_usd, 8),
        )


def _instruction(
    record: Record, task: str, index: int, turns: list[tuple[str, str]], provenance: Provenance
) -> Instruction:
    messages = []
    for n, (question, answer) in enumerate(turns):
        messages.append(
            Message(role="user", content=f"<image>\n{question}" if n == 0 else question)
        )
        messages.append(Message(role="assistant", content=answer))
    objects = {o.id: o for o in record.objects}
    referred = sorted({int(i) for q, a in turns for t in (q, a) for i in REF.findall(t)})
    return trusted(
        Instruction,
        id=f"{record.id}#{task}-{index}",
        record_id=record.id,
        image=record.image.path,
        image_size=[record.image.width, record.image.height],
        task=task,
        source=provenance.source(),
        messages=messages,
        regions={
            str(i): trusted(
                Region,
                bbox=objects[i].bbox,
                polygon=objects[i].polygon,
                category=objects[i].category,
            )
            for i in referred
            if i in objects
        },
    )


def local_instructions(
    record: Record, reply: LocalReply, provenance: Provenance, seed: int = 0
) -> Iterable[Instruction]:
    """One question per described object, one per relation (wording drawn with the run's seed)."""
    rng = random.Random(f"{seed}|{record.id}/local")
    for index, note in enumerate(reply.objects):
        answer = note.description.strip()
        if note.attributes:
            answer += " Attributes: " + ", ".join(a.strip() for a in note.attributes) + "."
        question = rng.choice(OBJECT_QUESTIONS).format(id=note.id)
        yield _instruction(record, "llm_object_detail", index, [(question, answer)], provenance)
    for index, relation in enumerate(reply.relations):
        a, b = relation.subject, relation.object
        question = rng.choice(RELATION_QUESTIONS).format(a=a, b=b)
        answer = f"<ref:{a}> is {relation.predicate.strip()} <ref:{b}>."
        yield _instruction(record, "llm_relation", index, [(question, answer)], provenance)


def global_instructions(
    record: Record, reply: GlobalReply, provenance: Provenance, seed: int = 0
) -> Iterable[Instruction]:
    question = random.Random(f"{seed}|{record.id}/global").choice(DESCRIPTION_QUESTIONS)
    turns = [(question, reply.description.strip())]
    yield _instruction(record, "llm_detailed_description", 0, turns, provenance)


def dialogue_instructions(
    record: Record, reply: DialogueReply, provenance: Provenance, seed: int = 0
) -> Iterable[Instruction]:
    turns = [(t.question.strip(), t.answer.strip()) for t in reply.turns]
    yield _instruction(record, "llm_multi_turn", 0, turns, provenance)


INSTRUCTIONS_OF = {
    "local": local_instructions,
    "global": global_instructions,
    "multi_turn": dialogue_instructions,
}


def qa_pairs(instructions: Iterable[Instruction]) -> int:
    """Number of (question, answer) pairs: a multi-turn instruction counts each turn."""
    return sum(len(i.messages) // 2 for i in instructions)
