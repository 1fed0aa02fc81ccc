"""The passes, cache key, prices and shards of LLM generation, without a server."""

from __future__ import annotations

import json

import pytest

from rsgpt4v.engines.shards import shard_of
from rsgpt4v.errors import InputError
from rsgpt4v.instruct.attributes import object_facts
from rsgpt4v.instruct.llm.cache import request_key
from rsgpt4v.instruct.llm.images import RenderedImage
from rsgpt4v.instruct.llm.passes import (
    PASSES,
    Earlier,
    ParseError,
    RecordContext,
    build_messages,
    parse,
    prompt_version,
    response_format,
)
from rsgpt4v.instruct.llm.pricing import ModelPrice, Usage, image_tokens, load_prices
from rsgpt4v.instruct.llm.replies import DialogueReply, GlobalReply, LocalReply
from rsgpt4v.instruct.llm.reply_checks import check
from rsgpt4v.instruct.llm.settings import Redactor, parse_shard
from rsgpt4v.schema import ImageInfo, Object, Record

VOCABULARY = ("plane", "ship", "storage-tank")


def _record(meta: dict | None = None) -> Record:
    objects = [
        Object(id=i, category="plane", bbox=[10 + 30 * i, 10, 24, 8],
               polygon=[[10 + 30 * i, 10], [34 + 30 * i, 10], [34 + 30 * i, 18], [10 + 30 * i, 18]])
        for i in range(2)
    ] + [Object(id=5, category="ship", bbox=[40, 60, 12, 30])]  # fmt: skip
    image = ImageInfo(path="a.png", width=120, height=100, gsd=0.5)
    return Record(id="r1", dataset="dota", split="train", image=image, objects=objects,
                  meta=meta or {})  # fmt: skip


def _context(meta: dict | None = None) -> RecordContext:
    record = _record(meta)
    return RecordContext.of(record, object_facts(record))


def test_local_prompt_lists_each_object_with_its_rule_facts_and_the_image_last() -> None:
    image = RenderedImage("data:image/jpeg;base64,AAAA", "d" * 64, 120, 100, "low")
    messages = build_messages(PASSES["local"], _context(), Earlier(), image)
    assert [m["role"] for m in messages] == ["system", "user"]
    text, picture = messages[1]["content"]
    assert picture == {"type": "image_url", "image_url": {"url": image.data_url, "detail": "low"}}
    rows = [json.loads(line) for line in text["text"].splitlines() if line.startswith('{"id"')]
    assert [r["id"] for r in rows] == [5, 0, 1]  # larger first: the ship's box is the largest
    assert rows[1]["category"] == "plane" and rows[1]["length_m"] == 12.0  # 24 px x 0.5 m
    assert {"position", "size_class", "box"} <= rows[1].keys()
    assert "Class counts: plane 2, ship at least 1." in text["text"]  # DOTA ships: partial


def test_later_passes_see_the_earlier_replies() -> None:
    local = LocalReply(objects=[], relations=[])
    earlier = Earlier(local=local, description="A port with <ref:5>.")
    text = build_messages(PASSES["multi_turn"], _context(), earlier, None)[1]["content"][0]["text"]
    assert local.model_dump_json() in text and "A port with <ref:5>." in text


def test_prompt_versions_come_from_the_template_headers() -> None:
    assert prompt_version(PASSES["local"]) == "local@2+system@3"


def test_structured_output_schema_is_strict_and_json_mode_is_the_fallback() -> None:
    fmt = response_format(PASSES["local"], "json_schema")
    schema = fmt["json_schema"]["schema"]
    assert fmt["json_schema"]["strict"] and schema["additionalProperties"] is False
    assert set(schema["required"]) == {"objects", "relations"}
    assert response_format(PASSES["local"], "json_object") == {"type": "json_object"}


@pytest.mark.parametrize(
    "text",
    [
        '{"description": "A field."}',
        '```json\n{"description": "A field."}\n```',
        'Sure! Here it is: {"description": "A field."} Hope this helps.',
    ],
)
def test_parse_tolerates_fences_and_chatter(text: str) -> None:
    assert parse(PASSES["global"], text) == GlobalReply(description="A field.")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty reply"),
        ('{"description": "cut', "not JSON"),
        ('{"summary": "A field."}', "not a GlobalReply"),
    ],
)
def test_parse_errors_say_why(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(PASSES["global"], text)


def _desc(text: str) -> GlobalReply:
    return GlobalReply(description=text)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (_desc("Two planes, <ref:0> and <ref:1>, face <ref:5>."), None),
        (_desc("The ship <ref:5> is moored."), None),
        (_desc("A plane <ref:7> is parked."), "object id 7"),
        (
            LocalReply(objects=[], relations=[{"subject": 0, "predicate": "near", "object": 3}]),
            "object id 3",
        ),
        (_desc("The plane at [10, 10, 34, 18] is white."), "coordinates"),
        (_desc("A plane sits at (12.5, 40)."), "coordinates"),
        (_desc("Three planes wait on the apron."), "labels have 2 plane"),
        (_desc("There are 4 planes."), "labels have 2 plane"),
        (_desc("A storage tank stands near the ship."), "'storage tank', a class the record"),
        (DialogueReply(turns=[{"question": "Q?", "answer": "A."}] * 2), "2 turns"),
        # whatever the case and the other characters of the text (a substring test runs first)
        (_desc("THREE PLANES wait \u2014 \u201cnear\u201d the apron."), "labels have 2 plane"),
        (_desc("A Storage-Tank \u00e9tait l\u00e0."), "'Storage-Tank', a class the record"),
        (_desc("Four plane\u017f wait."), "labels have 2 plane"),  # long s matches s, ignoring case
        (_desc("A \u017fhip and a \u212aite."), None),  # the ship is labelled
        (_desc("The relationship of <ref:0> and <ref:5>."), None),  # "ship" inside a word
    ],
)
def test_check_rejects_replies_that_contradict_the_labels(reply, reason: str | None) -> None:
    found = check(reply, _context(), VOCABULARY)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


@pytest.mark.parametrize(
    ("reply", "malformed"),
    [
        (_desc("A plane <ref: 999> is parked."), "<ref: 999>"),
        (_desc("The ship <REF:5> is moored."), "<REF:5>"),  # an id the record has, miscased
        (_desc("A plane <ref:abc> waits."), "<ref:abc>"),
        (_desc("Near <ref:05>, a ship."), "<ref:05>"),  # not the id as exports write it
        (_desc("Near <ref:0 >, a ship."), "<ref:0 >"),
        (_desc("Near <Ref:1>."), "<Ref:1>"),
        (_desc("The ship <ref:5"), "<ref:5"),  # never closed
        (_desc("Two planes <ref:0><ref:1 and <ref:5>."), "<ref:1 and"),
        (
            LocalReply(
                objects=[{"id": 5, "attributes": ["grey"], "description": "Beside <ref:1>."}],
                relations=[{"subject": 0, "predicate": "left of <ref=1>", "object": 1}],
            ),
            "<ref=1>",
        ),
        (DialogueReply(turns=[{"question": "Q <ref:x>?", "answer": "A."}] * 3), "<ref:x>"),
    ],
)
def test_check_rejects_object_refs_that_are_not_exactly_ref_n(reply, malformed: str) -> None:
    found = check(reply, _context(), VOCABULARY)
    assert found is not None and "malformed object reference" in found and malformed in found


def test_incomplete_labels_allow_lower_bounds_only_and_no_absence_check() -> None:
    partial = _context({"objects_exhaustive": False})
    assert check(_desc("At least two planes and a storage tank."), partial, VOCABULARY) is None
    exact = check(_desc("Three planes and a storage tank."), partial, VOCABULARY)
    assert "'Three planes' as an exact count" in exact and "at least 2" in exact
    assert "object id 9" in check(_desc("<ref:9>"), _context({"labelled": False}), VOCABULARY)


def _body(**changes) -> dict:
    picture = {"url": "data:image/jpeg;base64,AAAA", "detail": "low"}
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe."},
            {"type": "image_url", "image_url": picture},
        ]}],
        "temperature": 0.2,
        "max_tokens": 100,
        "seed": 0,
    }  # fmt: skip
    return body | changes


def _key(body: dict, version: str = "global@2+system@3", digest: str = "a" * 64) -> str:
    return request_key(body, pass_name="global", prompt_version=version, schema={"x": 1},
                       image_digests=[digest])  # fmt: skip


def test_cache_key_hashes_what_changes_the_answer_only() -> None:
    base = _key(_body())
    assert _key(_body(response_format={"type": "json_object"})) == base  # JSON-mode fallback
    assert _key(_body(stream=False)) == base  # knobs outside the answer
    assert _key(_body(model="gpt-4o-mini")) != base
    assert _key(_body(temperature=0.7)) != base
    assert _key(_body(), version="global@3+system@3") != base
    assert _key(_body(), digest="b" * 64) != base
    other_text = _body()
    other_text["messages"][0]["content"][0]["text"] = "Describe it."
    assert _key(other_text) != base


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        ((1024, 1024), "high", 765),
        ((2048, 4096), "high", 1105),
        ((128, 64), "high", 255),
        ((4000, 4000), "high", 765),
        ((4000, 4000), "low", 85),
    ],
)
def test_image_tokens_follow_the_tile_formula(size, detail: str, tokens: int) -> None:
    assert image_tokens(*size, detail, ModelPrice(2.5, 1.25, 10.0)) == tokens


def test_costs_come_from_the_price_table_with_prefix_match_and_batch_discount() -> None:
    prices = load_prices()
    assert prices.price_of("gpt-4o-2024-08-06") == prices.price_of("gpt-4o")
    assert prices.price_of("gpt-4o-mini-2024-07-18") == prices.price_of("gpt-4o-mini")
    assert prices.price_of("llava-local") is None
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=200_000)
    assert prices.cost("gpt-4o", usage) == pytest.approx(0.8 * 2.5 + 0.2 * 1.25 + 0.1 * 10)
    assert prices.cost("gpt-4o", usage, batch=True) == pytest.approx(
        prices.cost("gpt-4o", usage) / 2
    )
    assert prices.cost("llava-local", usage) == 0.0


def test_shards_are_deterministic_disjoint_and_cover_everything() -> None:
    ids = [f"scene{i}" for i in range(200)]
    shards = [{i for i in ids if shard_of(i, 3) == n} for n in range(3)]
    assert set().union(*shards) == set(ids) and sum(map(len, shards)) == len(ids)
    assert all(shards) and [shard_of(i, 3) for i in ids] == [shard_of(i, 3) for i in ids]
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(InputError, match="shard"):
            parse_shard(bad)


def test_the_redactor_removes_the_key_and_masked_pieces_of_it() -> None:
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    redact = Redactor(key)
    assert key not in redact(f"Incorrect API key provided: {key}.")
    assert "ABCDEFGHIJKL" not in redact("Incorrect API key provided: sk-proj-ABCDEFGHIJKL***6789")
    assert redact("nothing secret") == "nothing secret"


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        ({"content": '{"description": "A <ref:0> field."}'}, "ok", None),
        ({"content": None, "refusal": "I cannot help with that."}, "refused", "cannot help"),
        ({"content": '{"descr', "finish_reason": "length"}, "parse_error", "hit max_tokens"),
        ({"content": '{"description": "<ref:8>"}'}, "rejected", "object id 8"),
        ({"content": '{"description": "<REF:5>"}'}, "rejected", "malformed object reference"),
    ],
)
def test_a_stored_reply_is_judged_refused_parse_error_rejected_or_ok(
    reply: dict, status: str, reason: str | None
) -> None:
    from rsgpt4v.instruct.llm.engine import Outcome, judge

    outcome = judge(Outcome("global", "ok"), PASSES["global"], reply, _context(), VOCABULARY)
    assert outcome.status == status
    assert (outcome.reason is None) if reason is None else (reason in outcome.reason)
    assert (outcome.reply is not None) == (status == "ok")


def test_a_partially_labelled_class_may_be_counted_only_as_a_lower_bound() -> None:
    """DOTA labels every plane but not every ship (rsgpt4v.completeness): "2 planes" is a fact,
    "3 ships" is not, "at least 1 ship" is."""
    context = _context()
    assert context.partial == {"ship"}
    assert check(_desc("Two planes wait near the apron."), context, VOCABULARY) is None
    assert check(_desc("At least one ship and two planes."), context, VOCABULARY) is None
    rejected = check(_desc("Three ships are moored, with two planes."), context, VOCABULARY)
    assert "'Three ships' as an exact count" in rejected and "ship is not labelled" in rejected
