"""Rule drafts written straight to JSON lines: the bytes ``Instruction.model_dump_json`` writes.

The instruct stage writes some forty instructions per record; building each as a pydantic model
only to dump it costs more than the rules that decide it. :class:`RecordLines` writes a draft's
line directly: the record's own parts (id, image path, size) are encoded once per record, each
object's region once (by a pydantic serializer of the ``Region`` fields, so its numbers read
exactly as in a model dump), and texts with the standard library's JSON string encoder, which
escapes what pydantic escapes (quotes, backslashes, control characters) and nothing else. The
tests compare the two byte for byte.
"""

from __future__ import annotations

from json.encoder import encode_basestring

from pydantic import TypeAdapter
from typing_extensions import TypedDict

from rsgpt4v.instruct.rules.common import Draft, make_instruction
from rsgpt4v.schema import Object, Point, Record, Source


class _RegionFields(TypedDict):
    """The fields of :class:`rsgpt4v.schema.Region`, serialised without making a model."""

    bbox: list[float]
    polygon: list[Point] | None


_REGION_JSON = TypeAdapter(_RegionFields).serializer.to_json
_SOURCE_JSON = Source.__pydantic_serializer__.to_json
_heads: dict[tuple[str, str], str] = {}  # (task, template) -> its fields, encoded once


def _head(task: str, template: str) -> str:
    """The encoded task and source fields and the opening of the messages: a few per run."""
    found = _heads.get((task, template))
    if found is None:
        source = f'{{"generator":"rules","template":{encode_basestring(template)}}}'
        found = f'{encode_basestring(task)},"source":{source},"messages":['
        _heads[task, template] = found
    return found


class RecordLines:
    """Writes the JSON lines of one record's drafts (its regions encoded once, on first use)."""

    def __init__(self, record: Record) -> None:
        self.record = record
        record_id = encode_basestring(record.id)
        image = record.image
        self._id_start = '{"id":' + record_id[:-1] + "#"  # the id opens with the record id
        self._record_fields = (
            f',"record_id":{record_id},"image":{encode_basestring(image.path)},'
            f'"image_size":[{image.width},{image.height}],"task":'
        )
        self._regions: dict[int, str] = {}  # id(object) -> '"<id>":{region}'

    def line(self, draft: Draft) -> str:
        """The draft's instruction as one JSON line, newline included."""
        if draft.source_extra:
            head = encode_basestring(draft.task) + ',"source":'
            head += _SOURCE_JSON(make_instruction(self.record, draft).source).decode()
            head += ',"messages":['
        else:
            head = _head(draft.task, draft.template)
        turns = draft.turns
        question, answer = turns[0]
        messages = (
            '{"role":"user","content":"<image>\\n'
            + encode_basestring(question)[1:]
            + '},{"role":"assistant","content":'
            + encode_basestring(answer)
            + "}"
        )
        for question, answer in turns[1:]:
            messages += (
                ',{"role":"user","content":'
                + encode_basestring(question)
                + '},{"role":"assistant","content":'
                + encode_basestring(answer)
                + "}"
            )
        return (
            f'{self._id_start}{encode_basestring(draft.task)[1:-1]}-{draft.index}"'
            f'{self._record_fields}{head}{messages}],"regions":{{{self._regions_of(draft.objects)}}}}}\n'
        )

    def _regions_of(self, objects: tuple[Object, ...] | list[Object]) -> str:
        """The regions of these objects, keyed by id as a dict keeps them (the last of an id)."""
        if not objects:
            return ""
        cache = self._regions
        fragments = []
        for obj in objects:
            fragment = cache.get(id(obj))
            if fragment is None:
                region = {"bbox": obj.bbox, "polygon": obj.polygon}
                fragment = f'"{obj.id}":{_REGION_JSON(region).decode()}'
                cache[id(obj)] = fragment
            fragments.append(fragment)
        if len({o.id for o in objects}) < len(objects):  # repeated ids: one region each
            by_id = {str(o.id): fragment for o, fragment in zip(objects, fragments, strict=True)}
            fragments = [by_id[key] for key in dict.fromkeys(str(o.id) for o in objects)]
        return ",".join(fragments)
