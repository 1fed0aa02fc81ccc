"""Multi-turn dialogues (3-8 user turns) that draw from several reasoning patterns.

Up to ``MAX_DIALOGUES`` dialogues per image, each about its own focus class (drawn with the rng
among the countable classes, those with two or more objects when there are any) and, for
comparisons, one other exactly counted class. Its patterns
(:mod:`rsgpt4v.instruct.rules.reasoning`: counting and locating, comparison, arithmetic over
counts and areas, spatial chains, distance reasoning, arrangement) are shuffled with the rule's
rng and taken in that order while their facts hold, until the dialogue has the number of user
turns drawn for it; so the sequence of patterns differs from record to record.
The sequence is recorded in ``source.patterns``.

Labels that may miss instances still get a dialogue: the count reads "at least N" and only the
patterns that hold for partial labels (spatial chains, distances, size ratios, rows) are asked.
A tile that repeats an overlapping tile gets none (``Knowledge.scene_questions``).
"""

from __future__ import annotations

from collections.abc import Iterator

from rsgpt4v.instruct.attributes import cached_object_facts
from rsgpt4v.instruct.phrasing import load_pool
from rsgpt4v.instruct.rules.common import Draft, RuleContext, knowledge
from rsgpt4v.instruct.rules.fact_phrases import draft_from_text
from rsgpt4v.instruct.rules.reasoning import PATTERNS, Scene
from rsgpt4v.instruct.rules.task_random import TaskRandom
from rsgpt4v.schema import Record

MAX_USER_TURNS = 8
MIN_USER_TURNS = 3
MAX_DIALOGUES = 2  # per image, each about its own focus class


def multi_turn(record: Record, rng: TaskRandom, context: RuleContext) -> Iterator[Draft]:
    """One dialogue per labelled image with objects (see the module docstring)."""
    if not record.labelled or not record.objects:
        return
    known = knowledge(record, context)
    if not known.scene_questions:
        context.skip("multi_turn: tile repeats another tile")
        return
    if not known.classes:
        return
    facts = cached_object_facts(record, context.image_root)
    visible = {f.id for f, o in zip(facts, record.objects, strict=True) if known.visible(o)}
    countable = sorted(known.countable())
    several = [c for c in countable if len(known.classes[c].objects) >= 2]
    pool = several or countable
    foci: list[str | None] = rng.sample(pool, min(MAX_DIALOGUES, len(pool))) if pool else [None]
    for index, focus in enumerate(foci):
        others = [c for c in sorted(known.complete()) if c != focus]
        other = rng.choice(others) if others and focus in known.complete() else None
        scene = Scene(record, facts, known, visible, rng, focus, other)
        found = _dialogue(scene, rng)
        if found is None:
            context.skip("multi_turn: too few facts a model can see for a dialogue")
        else:
            turns, used = found
            draft = draft_from_text(
                "multi_turn", index, load_pool("multi_turn").template, turns, record
            )
            yield draft._replace(source_extra={"patterns": ",".join(used)})


def _dialogue(scene: Scene, rng: TaskRandom) -> tuple[list[tuple[str, str]], list[str]] | None:
    """The turns of the patterns drawn for one dialogue, and the patterns' names in order."""
    names = list(PATTERNS)
    rng.shuffle(names)
    wanted = rng.randint(MIN_USER_TURNS, MAX_USER_TURNS)
    turns: list[tuple[str, str]] = []
    used = []
    for name in names:
        if len(turns) >= wanted:
            break
        found = PATTERNS[name](scene)
        if found is None or len(turns) + len(found) > MAX_USER_TURNS:
            continue
        turns += found
        used.append(name)
    return (turns, used) if len(turns) >= MIN_USER_TURNS else None


TASKS = {"multi_turn": multi_turn}
