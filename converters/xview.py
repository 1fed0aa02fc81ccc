"""xView (xView1 detection): WorldView-3 scenes with horizontal boxes in one GeoJSON file.

Dataset
    xView (Lam et al., 2018): 847 labelled training scenes of about 3000x3000 px at 0.3 m, about
    a million objects in 60 classes, and 282 validation scenes without public labels.
Layout
    ::

        ROOT/xView_train.geojson     every training box (one large JSON document)
        ROOT/train_images/2355.tif   3-band 8-bit GeoTIFFs
        ROOT/val_images/...          no labels

    ``-O geojson=PATH`` (relative to ROOT) names another labels file.
Quirks
    The pixel box is the string ``properties.bounds_imcoords`` = ``"xmin,ymin,xmax,ymax"``
    (integers; boxes can reach past the image and are clipped); the feature's geometry is a
    lon/lat polygon and is not used, so the file is read with ``json``, not a GIS reader. The
    class is ``properties.type_id``, an id of the official ``xview_class_labels.txt`` table
    (:data:`XVIEW_CLASSES`); ``cat_id`` is the satellite catalog id, not a class, and goes to
    ``meta.catalog_ids``. Known defects of the real file are reported but do not stop a run,
    even without ``--skip-bad`` (they are in every copy of the dataset, so stopping would make
    it unconvertible): ``type_id`` 75 and 82, which are not in the table; empty
    ``bounds_imcoords``; and images that are referenced but missing (``1395.tif``). Each is a
    warning and a summary count, and a record that lost objects carries
    ``meta.skipped_objects``. Anything else malformed (a box that is not four integers, a
    non-integer ``type_id``, a feature without ``image_id``) is a reject naming its JSON path,
    e.g. ``features[12].properties.bounds_imcoords``. The whole file is loaded once (the
    ``json`` module cannot stream); only the fields used are kept while parsing.
Citation
    Lam et al., "xView: Objects in Context in Overhead Imagery", arXiv:1802.07856, 2018.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rsgpt4v.completeness import LabelCompleteness
from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import clip_bbox
from rsgpt4v.jsonfiles import load_json
from rsgpt4v.schema import Object, Record

# xview_class_labels.txt (DIUx-xView/data_utilities): type_id → class name.
XVIEW_CLASS_TABLE: dict[int, str] = {
    11: "Fixed-wing Aircraft",
    12: "Small Aircraft",
    13: "Cargo Plane",
    15: "Helicopter",
    17: "Passenger Vehicle",
    18: "Small Car",
    19: "Bus",
    20: "Pickup Truck",
    21: "Utility Truck",
    23: "Truck",
    24: "Cargo Truck",
    25: "Truck w/Box",
    26: "Truck Tractor",
    27: "Trailer",
    28: "Truck w/Flatbed",
    29: "Truck w/Liquid",
    32: "Crane Truck",
    33: "Railway Vehicle",
    34: "Passenger Car",
    35: "Cargo Car",
    36: "Flat Car",
    37: "Tank car",
    38: "Locomotive",
    40: "Maritime Vessel",
    41: "Motorboat",
    42: "Sailboat",
    44: "Tugboat",
    45: "Barge",
    47: "Fishing Vessel",
    49: "Ferry",
    50: "Yacht",
    51: "Container Ship",
    52: "Oil Tanker",
    53: "Engineering Vehicle",
    54: "Tower crane",
    55: "Container Crane",
    56: "Reach Stacker",
    57: "Straddle Carrier",
    59: "Mobile Crane",
    60: "Dump Truck",
    61: "Haul Truck",
    62: "Scraper/Tractor",
    63: "Front loader/Bulldozer",
    64: "Excavator",
    65: "Cement Mixer",
    66: "Ground Grader",
    71: "Hut/Tent",
    72: "Shed",
    73: "Building",
    74: "Aircraft Hangar",
    76: "Damaged Building",
    77: "Facility",
    79: "Construction Site",
    83: "Vehicle Lot",
    84: "Helipad",
    86: "Storage Tank",
    89: "Shipping container lot",
    91: "Shipping Container",
    93: "Pylon",
    94: "Tower",
}
XVIEW_CLASSES = tuple(XVIEW_CLASS_TABLE.values())
KEPT_PROPERTIES = ("bounds_imcoords", "type_id", "image_id", "feature_id", "cat_id")
IMAGE_FOLDERS = {"train": "train_images", "val": "val_images"}
DEFAULT_GEOJSON = "xView_train.geojson"


def _slim(obj: dict[str, Any]) -> dict[str, Any] | None:
    """``json`` object hook: drop lon/lat geometries and unused properties while loading.

    The real file is large; keeping only five properties per feature cuts the memory it takes.
    """
    if "coordinates" in obj:
        return None
    if "bounds_imcoords" in obj or "type_id" in obj:
        return {key: obj[key] for key in KEPT_PROPERTIES if key in obj}
    return obj


Features = list[tuple[int, dict[str, Any]]]  # (index in the features array, properties)


def parse_bounds(text: object) -> list[int]:
    """``"xmin,ymin,xmax,ymax"`` → four ints; ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError("bounds_imcoords must be a string 'xmin,ymin,xmax,ymax'")
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError("bounds_imcoords must be four integers 'xmin,ymin,xmax,ymax'") from None
    if len(numbers) != 4:
        raise ValueError("bounds_imcoords must be four integers 'xmin,ymin,xmax,ymax'")
    return numbers


def parse_type_id(value: object) -> int:
    """An int, or a string of digits; ValueError for anything else (bools included)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError("type_id must be an integer")


class XviewConverter(Converter):
    NAME = "xview"
    DESCRIPTION = "xView1: 60 classes, horizontal boxes from one GeoJSON of WorldView-3 scenes."
    LAYOUT = "ROOT/xView_train.geojson + ROOT/train_images/*.tif, ROOT/val_images/*.tif"
    SPLITS = ("train", "val")
    CLASSES = XVIEW_CLASSES
    COMPLETENESS = LabelCompleteness(
        "all",
        source="xView (Lam et al. 2018): crowd-sourced boxes over 60 nested classes (a small "
        "car is also a passenger vehicle); the paper reports missed and merged instances",
    )
    OPTIONS: ClassVar[dict[str, str]] = {
        "geojson": f"labels file relative to ROOT (default {DEFAULT_GEOJSON})"
    }
    CITATION = "Lam et al., xView: Objects in Context in Overhead Imagery, arXiv:1802.07856, 2018"

    def __init__(self, root: str | Path, **kwargs: object) -> None:
        super().__init__(root, **kwargs)  # type: ignore[arg-type]
        self.label_file = self.options.get("geojson", DEFAULT_GEOJSON)
        self.geojson = self.root / self.label_file
        self.unknown_type_ids: set[int] = set()
        if self.split is not None and self.split not in IMAGE_FOLDERS:
            raise InputError(f"unknown xView split {self.split!r}; known: train, val")

    def estimate_count(self) -> int | None:
        return sum(len(self._images(split)) for split in self._splits())

    def _splits(self) -> list[str]:
        if self.split:
            return [self.split]
        splits = [s for s, folder in IMAGE_FOLDERS.items() if (self.root / folder).is_dir()]
        if not splits:
            raise InputError(f"no train_images/ or val_images/; expected {self.LAYOUT}", self.root)
        return splits

    def _images(self, split: str) -> list[Path]:
        folder = self.root / IMAGE_FOLDERS[split]
        if not folder.is_dir():
            raise InputError(f"no {IMAGE_FOLDERS[split]}/ folder", file=self.root)
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))

    # -- labels -------------------------------------------------------------------------------
    def read_features(self) -> dict[str, Features]:
        """Features grouped by ``image_id``; malformed features are rejected by JSON path."""
        if not self.geojson.is_file():
            raise InputError("xView labels file not found", file=self.geojson)
        data = load_json(self.geojson, what="xView labels file", object_hook=_slim)
        features = data.get("features") if isinstance(data, dict) else None
        if not isinstance(features, list):
            raise InputError("expected a GeoJSON FeatureCollection with features", self.geojson)
        by_image: dict[str, Features] = defaultdict(list)
        for index, feature in enumerate(features):
            properties = feature.get("properties") if isinstance(feature, dict) else None
            if not isinstance(properties, dict):
                self.log.reject(
                    "feature has no properties", self.geojson, entry=f"features[{index}]"
                )
                continue
            image_id = properties.get("image_id")
            if not isinstance(image_id, str) or not image_id:
                self.log.reject(
                    "image_id must be an image file name such as '2355.tif'",
                    self.geojson,
                    value=image_id,
                    entry=f"features[{index}].properties.image_id",
                )
                continue
            by_image[image_id].append((index, properties))
        return by_image

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        splits = self._splits()
        by_image = self.read_features() if "train" in splits else {}
        for split in splits:
            images = self._images(split)
            for image in images:
                labels = by_image.get(image.name, []) if split == "train" else None
                yield from self._record(split, image, labels)
            if split == "train":
                self._report_missing(by_image, {image.name for image in images})

    def _report_missing(self, by_image: dict[str, Features], present: set[str]) -> None:
        """Features name images by file name; those whose image is absent are reported here."""
        for image_id in sorted(set(by_image) - present):
            n = len(by_image[image_id])
            self.log.warn(
                f"image {image_id} is referenced by {n} features but is not in "
                f"{IMAGE_FOLDERS['train']}/; its features are skipped",
                self.geojson,
            )
            self.log.count("xView images referenced but missing")
            self.log.count("xView features of missing images skipped", n)

    def _record(self, split: str, image: Path, labels: Features | None) -> Iterator[Record]:
        facts = self.image_facts(image)
        if facts is None:
            return
        meta: dict[str, object] = {"labelled": labels is not None}
        objects: list[Object] = []
        if labels is not None:
            meta["label_file"] = self.label_file
            objects = self._objects(labels, facts.width, facts.height)
            if len(objects) < len(labels):  # counts from this image would be wrong
                meta["skipped_objects"] = len(labels) - len(objects)
            catalog_ids = sorted({str(p["cat_id"]) for _, p in labels if "cat_id" in p})
            if catalog_ids:
                meta["catalog_ids"] = catalog_ids
        yield Record(
            id=f"xview/{split}/{image.stem}",
            dataset="xview",
            split=split,
            image=image_info(self.relative_path(image), facts),
            objects=objects,
            meta=meta,
        )

    def _objects(self, labels: Features, width: int, height: int) -> list[Object]:
        objects: list[Object] = []
        for index, properties in labels:
            entry = f"features[{index}].properties"
            bounds = properties.get("bounds_imcoords")
            if not bounds:
                self.log.warn(f"empty bounds_imcoords at {entry}; feature skipped", self.geojson)
                self.log.count("xView features with empty bounds skipped")
                continue
            try:
                type_id = parse_type_id(properties.get("type_id"))
            except ValueError as error:
                self.log.reject(
                    str(error),
                    self.geojson,
                    value=properties.get("type_id"),
                    entry=f"{entry}.type_id",
                )
                continue
            if type_id not in XVIEW_CLASS_TABLE:
                self._skip_unknown_type_id(type_id, entry)
                continue
            try:
                xmin, ymin, xmax, ymax = parse_bounds(bounds)
            except ValueError as error:
                self.log.reject(
                    str(error), self.geojson, value=bounds, entry=f"{entry}.bounds_imcoords"
                )
                continue
            bbox = clip_bbox([xmin, ymin, xmax - xmin, ymax - ymin], width, height)
            if bbox is None:
                self.log.reject(
                    f"box lies outside the {width}x{height} image or has no area",
                    self.geojson,
                    value=bounds,
                    entry=f"{entry}.bounds_imcoords",
                )
                continue
            attributes = {"type_id": type_id}
            if "feature_id" in properties:
                attributes["feature_id"] = properties["feature_id"]
            objects.append(
                Object(
                    id=len(objects),
                    category=XVIEW_CLASS_TABLE[type_id],
                    bbox=bbox,
                    attributes=attributes,
                )
            )
        return objects

    def _skip_unknown_type_id(self, type_id: int, entry: str) -> None:
        """Warn once per unknown id (one id recurs in many features) and count every feature."""
        if type_id not in self.unknown_type_ids:
            self.unknown_type_ids.add(type_id)
            self.log.warn(
                f"type_id {type_id} is not in the xView class table (first at {entry}.type_id); "
                "its features are skipped",
                self.geojson,
            )
        self.log.count(f"xView features with unknown type_id {type_id} skipped")
