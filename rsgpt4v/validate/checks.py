"""Checks of one instruction: its structure, its regions, and its text against the labels.

Each failed check is a :class:`Rejection` with a machine-readable ``code`` (``REASONS`` lists
them) and a message naming the instruction id and the offending value. Whether a count or a
class word is what the labels show is decided by :class:`rsgpt4v.label_facts.LabelFacts`, the
rule the LLM pass holds its replies to as well; text quoted verbatim from the record's own
captions or QA answers is the source's ground truth and is only checked for structure, not for
its words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.geometry import box_iou
from rsgpt4v.label_facts import LabelFacts
from rsgpt4v.schema import REF, Instruction, Object, Record
from rsgpt4v.validate.text_boxes import AUTO, BoxMatch, match_boxes, text_boxes
from rsgpt4v.validate.vocabulary import Mention, Vocabulary
from rsgpt4v.vocabulary import declared_completeness

REASONS: dict[str, str] = {
    "schema": "the line or item is not a valid instruction (or LLaVA / ShareGPT conversation)",
    "roles": "messages do not alternate user → assistant (an optional system message first)",
    "image_token": "not exactly one <image>, in the first user message",
    "empty_answer": "an assistant message is empty, or the conversation ends on a question",
    "unknown_record": "the instruction's record (by id or image path) is not in the records",
    "image_size": "image_size differs from the record's image size",
    "malformed_ref": "text has a <ref that is not exactly <ref:N> (a space, upper case, N not a "
    "number; InternVL's <ref>phrase</ref> tags excepted); export would copy it verbatim",
    "unknown_ref": "a <ref:N> with no region, or a region that is no object of the record",
    "box_outside_image": "a region's box is not inside the image",
    "ref_box_mismatch": "a region's box is not the record's box of that object",
    "ref_category_mismatch": "a class word right before <ref:N> is not object N's class",
    "count_mismatch": "a counting answer's number of objects differs from the label count (or is "
    "exact where the labels may miss some), or another answer's exceeds it",
    "invented_category": "an object class of the dataset said to be present is not in the "
    "complete labels",
    "text_box_mismatch": "a box written as text overlaps no labelled box by the IoU threshold",
    "duplicate": "same image and same conversation as an earlier instruction",
    "leaked_image": "the image also appears (same bytes or near-same pixels) in another split",
}
COUNTING_TASKS = frozenset({"counting", "presence"})
COUNTING_QUESTION = re.compile(r"\bhow many\b|\bcount\b|\bnumber of\b|\bcounting\b", re.I)
_REF_AFTER = re.compile(r"\s*<ref:(\d+)>")
# "<ref" in any case where the exact "<ref:N>" (N without leading zeros) does not start.
# InternVL's phrase tags (<ref>ship</ref>, rsgpt4v.families) are no object refs.
_MALFORMED_REF = re.compile(r"(?!<ref:(?:0|[1-9]\d*)>)(?!(?i:<ref>))(?i:<ref)")
_REF_TOKEN = re.compile(r"<[^<>\n]{0,24}>?")  # the malformed token, for the message
_CLAUSE = re.compile(r"[.!?;:,\n]+|\bbut\b", re.I)
_NEGATION = re.compile(
    r"\b(?:no|not|none|without|never|neither|nor|zero|absent|lacks?|cannot)\b|n't\b", re.I
)
BOX_TOLERANCE = 0.01  # pixels: boxes are clipped to the image, up to float rounding
SAME_BOX_IOU = 0.999  # a region is its object's box up to float rounding


@dataclass(frozen=True)
class Rejection:
    """One failed check of one instruction."""

    code: str
    instruction: str
    message: str
    value: object = None


@dataclass(frozen=True)
class CheckSettings:
    """How boxes written as text are read (``boxes`` family, ``square_pad`` and ``max_pixels``
    where they differ from the family's defaults) and matched (``iou``).

    A text box whose best IoU with a labelled box is below ``iou`` is mismatched.
    """

    iou: float = 0.5
    boxes: str = AUTO
    square_pad: bool | None = None
    max_pixels: int | None = None
    #: The run's ``--completeness`` overrides (else each dataset's converter declares it).
    completeness: Mapping[str, LabelCompleteness] = field(default_factory=dict)


@dataclass
class Findings:
    """What the checks found: rejections, and the text boxes read (the report draws them)."""

    rejections: list[Rejection] = field(default_factory=list)
    text_boxes: list[BoxMatch] = field(default_factory=list)

    def add(self, code: str, instruction: Instruction, message: str, value: object) -> None:
        text = f"{instruction.id}: {message}"
        self.rejections.append(Rejection(code, instruction.id, text, value))


def check_structure(instruction: Instruction, findings: Findings) -> None:
    """Roles alternate user/assistant, one ``<image>`` is in the first question, no empty answer.

    LLaVA data puts the token before or after the question text; both are accepted.
    """
    messages = list(instruction.messages)
    if messages and messages[0].role == "system":
        messages = messages[1:]
    roles = [m.role for m in messages]
    expected = ["user", "assistant"] * (len(roles) // 2 + 1)
    if roles != expected[: len(roles)]:
        findings.add("roles", instruction, f"roles are {roles}", " ".join(roles))
    images = sum(m.content.count("<image>") for m in instruction.messages)
    first = messages[0].content if messages and messages[0].role == "user" else ""
    if images != 1 or "<image>" not in first:
        findings.add(
            "image_token",
            instruction,
            f"{images} <image> tokens; expected one, in the first user message",
            images,
        )
    for index, message in enumerate(instruction.messages):
        if message.role == "assistant" and not message.content.strip():
            findings.add("empty_answer", instruction, f"message {index} is an empty answer", index)
    if messages and messages[-1].role != "assistant":
        findings.add("empty_answer", instruction, "the last question has no answer", len(roles))


def check_regions(instruction: Instruction, record: Record | None, findings: Findings) -> None:
    """Every ``<ref:N>`` has a region inside the image that is the record's box of object N.

    Anything else that opens like a ref (``<ref: 3>``, ``<REF:3>``, ``<ref:a>``) is rejected:
    export expands the exact form only and would leave the rest in the training text.
    """
    width, height = instruction.image_size
    _check_malformed_refs(instruction, findings)
    for ref in sorted({int(n) for m in instruction.messages for n in REF.findall(m.content)}):
        if str(ref) not in instruction.regions:
            findings.add("unknown_ref", instruction, f"<ref:{ref}> has no region", ref)
    objects = _record_facts(record)[3] if record is not None else None
    for key, region in instruction.regions.items():
        x, y, w, h = region.bbox
        outside = (
            w <= 0
            or h <= 0
            or x < -BOX_TOLERANCE
            or y < -BOX_TOLERANCE
            or x + w > width + BOX_TOLERANCE
            or y + h > height + BOX_TOLERANCE
        )
        if outside:
            findings.add(
                "box_outside_image",
                instruction,
                f"region {key} box {region.bbox} is not inside the {width}x{height} image",
                region.bbox,
            )
        if objects is None:
            continue
        obj = objects.get(int(key)) if key.isdigit() else None
        if obj is None:
            message = f"region {key} is no object of the record"
            findings.add("unknown_ref", instruction, message, key)
        elif box_iou(obj.bbox, region.bbox) < SAME_BOX_IOU:
            findings.add(
                "ref_box_mismatch",
                instruction,
                f"region {key} box {region.bbox} is not object {key}'s box {obj.bbox}",
                region.bbox,
            )


def _check_malformed_refs(instruction: Instruction, findings: Findings) -> None:
    tokens = {
        _REF_TOKEN.match(message.content, match.start())[0]: None
        for message in instruction.messages
        for match in _MALFORMED_REF.finditer(message.content)
    }
    for token in tokens:
        message = f"{token!r} is not an object reference; write <ref:N> with N a region number"
        findings.add("malformed_ref", instruction, message, token)


def quoted_texts(record: Record) -> set[str]:
    """The record's own captions and QA answers: source ground truth, not generated claims."""
    return {c.strip() for c in record.captions} | {q.answer.strip() for q in record.qa}


def check_text(
    instruction: Instruction,
    record: Record,
    vocabulary: Vocabulary,
    settings: CheckSettings,
    findings: Findings,
) -> None:
    """Counts, category words and text boxes of every generated message, against the labels."""
    quoted, facts, truth, objects = _record_facts(record, settings.completeness)
    question = ""
    width, height = record.image.width, record.image.height
    for message in instruction.messages:
        text = message.content
        if message.role == "user":
            question = text
        if message.role == "system" or text.strip() in quoted:
            continue
        reading = {"square_pad": settings.square_pad, "max_pixels": settings.max_pixels}
        style, boxes = text_boxes(text, width, height, style=settings.boxes, **reading)
        matches = match_boxes(boxes, style or "", truth, width, height, **reading)
        for match in matches:
            findings.text_boxes.append(match)
            if match.iou < settings.iou:
                findings.add(
                    "text_box_mismatch",
                    instruction,
                    f"text box [x, y, w, h] = {_rounded(match.xywh())} px ({style}) overlaps no "
                    "labelled box "
                    f"(best IoU {match.iou:.2f} < {settings.iou})",
                    round(match.iou, 3),
                )
        mentions = vocabulary.mentions(text)
        _check_ref_categories(instruction, text, mentions, vocabulary, objects, findings)
        if message.role != "assistant":
            continue
        counting = instruction.task in COUNTING_TASKS or COUNTING_QUESTION.search(question)
        _check_counts(instruction, mentions, facts, findings, total=bool(counting))
        _check_categories(instruction, text, mentions, vocabulary, facts, findings)


_last_facts: tuple[Record, Mapping, tuple] | None = None


def _record_facts(
    record: Record, completeness: Mapping[str, LabelCompleteness] | None = None
) -> tuple[set[str], LabelFacts, list[tuple[int, list[float]]], dict[int, Object]]:
    """What the text checks need of a record, kept for the last record asked about (its label
    facts by ``completeness``; None: any, for a caller that reads the objects only).

    A record's instructions come one after another, so each record is summarised once.
    """
    global _last_facts
    fresh = _last_facts is not None and _last_facts[0] is record
    if fresh and completeness is not None:
        fresh = _last_facts[1] is completeness  # type: ignore[index]
    if not fresh:
        given = (completeness or {}).get(record.dataset)
        labelling = given or declared_completeness(record.dataset)
        facts = (
            quoted_texts(record),
            LabelFacts.of(record, labelling),
            [(o.id, o.bbox) for o in record.objects],
            {o.id: o for o in record.objects},
        )
        _last_facts = (record, completeness, facts)
    return _last_facts[2]


def _check_ref_categories(
    instruction: Instruction,
    text: str,
    mentions: list[Mention],
    vocabulary: Vocabulary,
    objects: dict[int, Object],
    findings: Findings,
) -> None:
    """A class word right before ``<ref:N>`` ("the ship <ref:3>") must name object N's class."""
    for mention in mentions:
        ref = _REF_AFTER.match(text, mention.end)
        obj = objects.get(int(ref[1])) if ref else None
        if obj is not None and not vocabulary.covers(mention, [obj.category]):
            findings.add(
                "ref_category_mismatch",
                instruction,
                f"text calls <ref:{obj.id}> {mention.words!r}, the label is {obj.category!r}",
                mention.words,
            )


def _check_counts(
    instruction: Instruction,
    mentions: list[Mention],
    facts: LabelFacts,
    findings: Findings,
    *,
    total: bool,
) -> None:
    """Numbers before category words: what the labels vouch for (``LabelFacts.count_problem``).

    Counting answers (``total``) give the number of them all; elsewhere a number may count a
    subset ("3 ships are moored at the quay" of 5), so only one above the label count is wrong.
    """
    for mention in mentions:
        if mention.count is None:
            continue
        problem = facts.count_problem(
            mention.categories,
            mention.count,
            total=total,
            lower_bound=mention.lower_bound is not None,
        )
        if problem is not None:
            message = f"answer says {mention.said} {problem}"
            findings.add("count_mismatch", instruction, message, mention.count)


def _check_categories(
    instruction: Instruction,
    text: str,
    mentions: list[Mention],
    vocabulary: Vocabulary,
    facts: LabelFacts,
    findings: Findings,
) -> None:
    """A class of the dataset named as present (not negated, not counted as zero) must be
    labelled (``LabelFacts.invented``), or be a kind of a labelled one."""
    present = [c for c, n in facts.counts.items() if n]
    for mention in mentions:
        if (
            mention.count == 0
            or not facts.invented(mention.categories)
            or vocabulary.covers(mention, present)
        ):
            continue
        clause_start = max((m.end() for m in _CLAUSE.finditer(text, 0, mention.start)), default=0)
        if _NEGATION.search(text, clause_start, mention.start):
            continue
        findings.add(
            "invented_category",
            instruction,
            f"answer names {mention.words!r}, which the labels do not have",
            mention.words,
        )


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 1) for v in values]
