"""The LLM reply check and `validate` judge class names and counts by one rule (LabelFacts).

DOTA labels every plane and storage tank but not every ship or small vehicle
(rsgpt4v.completeness), so the same sentence about such a record is kept by both checks or
rejected by both. Each text is a counting answer for `validate`: the reply check reads every
number before a class as a total.
"""

from __future__ import annotations

import pytest

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.instruct.attributes import object_facts
from rsgpt4v.instruct.llm.passes import RecordContext
from rsgpt4v.instruct.llm.replies import GlobalReply
from rsgpt4v.instruct.llm.reply_checks import check
from rsgpt4v.label_facts import LabelFacts
from rsgpt4v.schema import ImageInfo, Instruction, Message, Object, Record, Source
from rsgpt4v.validate.checks import CheckSettings, Findings, check_text
from rsgpt4v.validate.vocabulary import mention_vocabulary

DOTA = ("plane", "ship", "small-vehicle", "storage-tank")
HRSC = ("aircraft carrier", "ship", "submarine")


def _object(index: int, category: str) -> Object:
    x, y = 10 + 25 * (index % 8), 10 + 25 * (index // 8)
    polygon = [[x, y], [x + 16, y], [x + 16, y + 8], [x, y + 8]]
    return Object(id=index, category=category, bbox=[x, y, 16, 8], polygon=polygon)


def _record(dataset: str, categories: list[str], meta: dict | None = None) -> Record:
    objects = [_object(i, c) for i, c in enumerate(categories)]
    image = ImageInfo(path="a.png", width=256, height=256, gsd=0.5)
    return Record(
        id="r1", dataset=dataset, split="train", image=image, objects=objects, meta=meta or {}
    )


def _dota(meta: dict | None = None) -> Record:
    return _record("dota", ["plane"] * 2 + ["ship"] + ["small-vehicle"] * 9, meta)


def _llm_verdict(record: Record, text: str, vocabulary: tuple[str, ...]) -> str | None:
    context = RecordContext.of(record, object_facts(record))
    return check(GlobalReply(description=text), context, vocabulary)


def _validate_verdict(
    record: Record, text: str, vocabulary: tuple[str, ...], task: str, completeness=None
) -> list[str]:
    instruction = Instruction(
        id="r1#t-0",
        record_id=record.id,
        image=record.image.path,
        image_size=[record.image.width, record.image.height],
        task=task,
        source=Source(generator="llm", template="t"),
        messages=[
            Message(role="user", content="<image>\nWhat does the image show?"),
            Message(role="assistant", content=text),
        ],
    )
    findings = Findings()
    words = mention_vocabulary(record.dataset, frozenset(vocabulary))
    settings = CheckSettings(completeness=completeness or {})
    check_text(instruction, record, words, settings, findings)
    return [r.message for r in findings.rejections]


def _verdicts(
    record: Record, text: str, vocabulary: tuple[str, ...], task: str = "counting"
) -> tuple[str | None, list[str]]:
    return _llm_verdict(record, text, vocabulary), _validate_verdict(record, text, vocabulary, task)


@pytest.mark.parametrize(
    "text",
    [
        "There are at least 9 small vehicles.",  # a partial class, counted as the labels' bound
        "At least two small vehicles wait beside 2 planes.",
        "There are 2 planes and at least one ship.",
    ],
)
def test_both_keep_what_the_labels_vouch_for(text: str) -> None:
    llm, validate = _verdicts(_dota(), text, DOTA)
    assert llm is None and validate == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("There are 9 small vehicles.", "small-vehicle is not labelled exhaustively"),
        ("There are at least 12 small vehicles.", "the labels have 9 small-vehicle"),
        ("There are 3 planes.", "the labels have 2 plane"),  # an exhaustive class
    ],
)
def test_both_reject_a_count_the_labels_do_not_vouch_for(text: str, reason: str) -> None:
    llm, validate = _verdicts(_dota(), text, DOTA)
    assert llm is not None and reason in llm
    assert len(validate) == 1 and reason in validate[0]


def test_both_reject_an_exhaustive_class_the_complete_labels_lack() -> None:
    llm, validate = _verdicts(_dota(), "A storage tank stands by the road.", DOTA)
    assert llm is not None and "'storage tank', a class the record does not have" in llm
    assert len(validate) == 1 and "'storage tank', which the labels do not have" in validate[0]


def test_with_incomplete_labels_both_take_every_count_as_a_lower_bound() -> None:
    """A referring-expression record: `validate` used to skip its counts, the LLM did not."""
    record = _dota({"objects_exhaustive": False})
    llm, validate = _verdicts(record, "At least two planes and a storage tank.", DOTA)
    assert llm is None and validate == []
    llm, validate = _verdicts(record, "There are 2 planes.", DOTA)
    assert "'2 planes' as an exact count" in llm
    assert len(validate) == 1 and "2 planes as an exact count" in validate[0]


def test_nested_classes_are_no_contradiction_for_either() -> None:
    """HRSC2016's classes nest: the carrier is a ship, and "no submarine" names no class as
    present (the LLM check used to reject both names)."""
    record = _record("hrsc2016", ["aircraft carrier"])
    text = "A ship is moored at the quay, and there is no submarine."
    llm, validate = _verdicts(record, text, HRSC, task="detailed_description")
    assert llm is None and validate == []


@pytest.mark.parametrize(
    ("stated", "total", "lower_bound", "problem"),
    [
        (9, False, True, None),  # at least the labelled 9
        (3, False, False, None),  # a subset
        (12, False, True, "but the labels have 9"),
        (12, False, False, "but the labels have 9"),
        (9, True, False, "as an exact count"),  # the labels may miss some
        (9, True, True, None),
    ],
)
def test_a_partial_class_is_counted_at_least_and_never_above_its_labels(
    stated: int, total: bool, lower_bound: bool, problem: str | None
) -> None:
    facts = LabelFacts.of(_dota(), LabelCompleteness(frozenset({"small-vehicle", "ship"})))
    found = facts.count_problem(["small-vehicle"], stated, total=total, lower_bound=lower_bound)
    assert found is None if problem is None else problem in found


def test_a_class_without_labels_in_incomplete_labels_is_not_judged() -> None:
    facts = LabelFacts.of(_dota({"labelled": False}), LabelCompleteness())
    assert facts.count_problem(["storage-tank"], 4, total=True, lower_bound=False) is None
    assert not facts.invented(["storage-tank"])


def test_validate_takes_the_completeness_the_instructions_were_written_with() -> None:
    """``validate --completeness`` (the file given to ``instruct``): a class made exhaustive
    there may be counted exactly, as the rules then count it."""
    record = _dota()
    text = "There are 9 small vehicles."
    assert _validate_verdict(record, text, DOTA, "counting")  # DOTA's own: only "at least"
    exhaustive = {"dota": LabelCompleteness(partial=frozenset())}
    assert _validate_verdict(record, text, DOTA, "counting", exhaustive) == []
    assert _validate_verdict(record, "There are 8 small vehicles.", DOTA, "counting", exhaustive)
