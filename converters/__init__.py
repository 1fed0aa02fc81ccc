"""Dataset converters, found by name.

Built-in converters live in this package, one module per dataset family. Other packages add
their own through the ``rsgpt4v.converters`` entry-point group: an entry point named ``mydata``
pointing at a :class:`Converter` subclass makes ``rsgpt4v convert mydata ROOT`` work.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from rsgpt4v.converters.base import Converter
from rsgpt4v.errors import ConverterNotFoundError
from rsgpt4v.problems import Problem, ProblemLog

__all__ = ["Converter", "Problem", "ProblemLog", "available_converters", "get_converter"]

ENTRY_POINT_GROUP = "rsgpt4v.converters"

# name → "module:class"; imported only when used, so listing names stays cheap.
BUILTIN_CONVERTERS: dict[str, str] = {
    "dota": "rsgpt4v.converters.dota:DotaConverter",
    "dota-v1.0": "rsgpt4v.converters.dota:DotaV10Converter",
    "dota-v1.5": "rsgpt4v.converters.dota:DotaV15Converter",
    "dota-v2.0": "rsgpt4v.converters.dota:DotaV20Converter",
    "rsicd": "rsgpt4v.converters.captions:RsicdConverter",
    "ucm-captions": "rsgpt4v.converters.captions:UcmCaptionsConverter",
    "sydney-captions": "rsgpt4v.converters.captions:SydneyCaptionsConverter",
    "nwpu-captions": "rsgpt4v.converters.captions:NwpuCaptionsConverter",
    "rsitmd": "rsgpt4v.converters.captions:RsitmdConverter",
    "ucm": "rsgpt4v.converters.scene_classification:UcMercedConverter",
    "aid": "rsgpt4v.converters.scene_classification:AidConverter",
    "resisc45": "rsgpt4v.converters.scene_classification:Resisc45Converter",
    "dior": "rsgpt4v.converters.dior:DiorConverter",
    "dior-r": "rsgpt4v.converters.dior:DiorRConverter",
    "nwpu-vhr10": "rsgpt4v.converters.nwpu_vhr10:NwpuVhr10Converter",
    "hrsc2016": "rsgpt4v.converters.hrsc2016:Hrsc2016Converter",
    "hrrsd": "rsgpt4v.converters.hrrsd:HrrsdConverter",
    "rsod": "rsgpt4v.converters.rsod:RsodConverter",
    "rsvqa-lr": "rsgpt4v.converters.rsvqa:RsvqaLrConverter",
    "rsvqa-hr": "rsgpt4v.converters.rsvqa:RsvqaHrConverter",
    "rsivqa": "rsgpt4v.converters.rsivqa:RsivqaConverter",
    "floodnet-vqa": "rsgpt4v.converters.floodnet_vqa:FloodnetVqaConverter",
    "dior-rsvg": "rsgpt4v.converters.dior_rsvg:DiorRsvgConverter",
    "fair1m": "rsgpt4v.converters.fair1m:Fair1mConverter",
    "xview": "rsgpt4v.converters.xview:XviewConverter",
    "isaid": "rsgpt4v.converters.coco:IsaidConverter",
    "coco": "rsgpt4v.converters.coco:CocoConverter",
    "geo": "rsgpt4v.converters.geo:GeoConverter",
    "yolo": "rsgpt4v.converters.yolo:YoloConverter",
    "voc": "rsgpt4v.converters.voc_generic:VocConverter",
}


def _load(target: str) -> type[Converter]:
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


def get_converter(name: str) -> type[Converter]:
    """The converter class registered under name (built-in first, then entry points)."""
    if name in BUILTIN_CONVERTERS:
        return _load(BUILTIN_CONVERTERS[name])
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            converter = entry.load()
            if not (isinstance(converter, type) and issubclass(converter, Converter)):
                raise ConverterNotFoundError(
                    f"entry point {name!r} ({entry.value}) is not a Converter subclass"
                )
            return converter
    known = ", ".join(sorted(available_converter_names()))
    raise ConverterNotFoundError(f"unknown dataset {name!r}; known: {known}")


def available_converter_names() -> list[str]:
    names = set(BUILTIN_CONVERTERS)
    names.update(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def available_converters() -> dict[str, type[Converter]]:
    """Every registered converter, by name (imports them all)."""
    return {name: get_converter(name) for name in available_converter_names()}
