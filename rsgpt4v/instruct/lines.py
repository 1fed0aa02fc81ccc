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

from collections.abc import Sequence
from json.encoder import encode_basestring

from pydantic import TypeAdapter
from typing_extensions import TypedDict

from rsgpt4v.instruct.rules.common import Draft, make_instruction
from rsgpt4v.schema import Object, Point, Record, Source


class _RegionFields(TypedDict):
    """The fields of :class:`rsgpt4v.schema.Region`, serialised without making a model."""

    bbox: list[float]
    polygon: list[Point] | None
    category: str | None


_REGION_JSON = TypeAdapter(_RegionFields).serializer.to_json
_REGIONS_JSON = TypeAdapter(list[_RegionFields]).serializer.to_json
_SOURCE_JSON = Source.__pydantic_serializer__.to_json
_heads: dict[tuple[str, str], tuple[str, str]] = {}  # (task, template) -> encoded pieces


def _head(task: str, template: str) -> tuple[str, str]:
    """The task as encoded in the id, and the task and source fields up to the messages.

    A run has a few dozen (task, template) pairs, so each is encoded once.
    """
    found = _heads.get((task, template))
    if found is None:
        task_json = encode_basestring(task)
        source = f'{{"generator":"rules","template":{encode_basestring(template)}}}'
        found = (task_json[1:-1], f'{task_json},"source":{source},"messages":[')
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
        self._regions: dict[int, str] = {}  # id(object) -> '"<id>":{region}', filled on first use

    def line(self, draft: Draft) -> str:
        """The draft's instruction as one JSON line, newline included."""
        # the lookup written out: _head() is called only for a pair not seen yet
        task, head = _heads.get((draft.task, draft.template)) or _head(draft.task, draft.template)
        if draft.source_extra:
            source = _SOURCE_JSON(make_instruction(self.record, draft).source).decode()
            head = f'{encode_basestring(draft.task)},"source":{source},"messages":['
        turns = draft.turns
        question, answer = turns[0]
        messages = (
            f'{{"role":"user","content":"<image>\\n{encode_basestring(question)[1:]}}},'
            f'{{"role":"assistant","content":{encode_basestring(answer)}}}'
        )
        if len(turns) > 1:
            for question, answer in turns[1:]:
                messages += (
                    f',{{"role":"user","content":{encode_basestring(question)}}},'
                    f'{{"role":"assistant","content":{encode_basestring(answer)}}}'
                )
        objects = draft.objects
        if not objects:
            regions = ""
        elif len(objects) == 1 and id(objects[0]) in self._regions:  # encoded already
            regions = self._regions[id(objects[0])]
        else:
            regions = self._regions_of(objects)
        return (
            f'{self._id_start}{task}-{draft.index}"{self._record_fields}{head}{messages}],'
            f'"regions":{{{regions}}}}}\n'
        )

    def _regions_of(self, objects: Sequence[Object]) -> str:
        """The regions of these objects, keyed by id as a dict keeps them (the last of an id)."""
        if not self._regions:
            self._encode_regions()
        fragments = [self._regions.get(id(o)) or self._encode_region(o) for o in objects]
        if len(objects) > 1 and len({o.id for o in objects}) < len(objects):  # repeated ids
            by_id = {str(o.id): fragment for o, fragment in zip(objects, fragments, strict=True)}
            fragments = [by_id[key] for key in dict.fromkeys(str(o.id) for o in objects)]
        return ",".join(fragments)

    def _encode_regions(self) -> None:
        """Encode the region of every object of the record in one serializer call.

        A region's text starts with its bbox, and its category is a JSON string (quotes
        escaped), so the objects' JSON texts are split where one ends and the next begins.
        """
        objects = self.record.objects
        text = _REGIONS_JSON(
            [{"bbox": o.bbox, "polygon": o.polygon, "category": o.category} for o in objects]
        ).decode()
        parts = text[len('[{"bbox":') : -len("}]")].split('},{"bbox":') if objects else []
        for obj, part in zip(objects, parts, strict=True):
            self._regions[id(obj)] = f'"{obj.id}":{{"bbox":{part}}}'

    def _encode_region(self, obj: Object) -> str:
        """The region of an object that is not one of the record's own (never, in the rules)."""
        fields = {"bbox": obj.bbox, "polygon": obj.polygon, "category": obj.category}
        return f'"{obj.id}":{_REGION_JSON(fields).decode()}'
