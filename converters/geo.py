"""Your own GeoTIFF scenes with polygon labels in a GIS vector file, in any CRS.

Dataset
    An analyst's imagery: GeoTIFF scenes and polygon labels drawn in QGIS/ArcGIS and saved as
    GeoJSON, Shapefile or GeoPackage (read with geopandas through pyogrio).
Layout
    ``ROOT/**/*.tif`` (or ``.tiff``), each with a vector file of the same stem beside it
    (``scene.gpkg``, ``scene.geojson``, ``scene.json`` or ``scene.shp``, taken in that order),
    or one vector file for every scene (``-O labels=FILE``). The class is the ``class`` or
    ``category`` attribute (``-O category_field=NAME`` for another).
Quirks
    Labels in another CRS than the scene (lat/lon GeoJSON on a UTM scene): reprojected with
    ``to_crs`` to the scene's CRS, then to pixels with the inverse geotransform. Invalid rings
    are repaired (``shapely.make_valid``); a MultiPolygon (or a ring that repair splits) gives
    one object per part (``attributes.part``); holes are dropped from ``polygon``
    (``attributes.holes`` counts them). Features partly off the scene keep their whole polygon,
    the box is clipped. Rejected with the reason: empty or null geometries, points and lines (a
    label without an outline has no box, and a buffer would invent one), features without a
    class, features off their scene, coordinates that are NaN, infinite or beyond ±1e9 (in the
    file, or in pixels once reprojected: GEOS cannot repair them), the rest of the scene kept.
    A vector file without a CRS is an error, as is a missing class column (the message lists
    the columns there are).
Citation
    Your data; cite the imagery provider.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from affine import Affine
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from rasterio.warp import transform_bounds

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.errors import InputError
from rsgpt4v.geometry import GeometryError, check_coordinates, polygon_to_clipped_bbox
from rsgpt4v.raster import RasterFacts
from rsgpt4v.schema import Object, Record

RASTER_SUFFIXES = (".tif", ".tiff")
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")  # preference order beside a scene
CATEGORY_FIELDS = ("class", "category")
POLYGONAL = ("Polygon", "MultiPolygon")
PIXEL_DECIMALS = 6


@dataclass
class LabelLayer:
    """A vector file's usable polygon features, each with its row number for messages."""

    path: Path
    frame: gpd.GeoDataFrame  # index = row number in the file (0-based)
    category_field: str
    used: set[int] = field(default_factory=set)


class GeoConverter(Converter):
    NAME = "geo"
    DESCRIPTION = "Your GeoTIFFs + polygon labels (GeoJSON, Shapefile, GeoPackage) in any CRS."
    LAYOUT = (
        "ROOT/**/*.tif|*.tiff, each with SCENE.gpkg|.geojson|.json|.shp beside it, "
        "or one vector file for all (-O labels=FILE)"
    )
    OPTIONS: ClassVar[dict[str, str]] = {
        "labels": "one vector file labelling every scene (default: the file beside each scene "
        "with its stem); a relative path is looked up from the current folder, then ROOT",
        "category_field": "attribute holding the class (default: class, else category)",
        "layer": "layer to read from a vector file of several (a GeoPackage); default: the "
        "first, with a warning that names the others",
    }
    CITATION = "Your data; cite the imagery provider."

    def estimate_count(self) -> int | None:
        return len(self._rasters())

    def _rasters(self) -> list[Path]:
        return sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES and p.is_file()
        )

    def records(self) -> Iterator[Record]:
        rasters = self._rasters()
        if not rasters:
            raise InputError(f"no GeoTIFF under the root; expected {self.LAYOUT}", file=self.root)
        shared = self._shared_layer()
        beside = {} if shared else self._vector_files(rasters)
        for raster in rasters:
            layer = shared
            if shared is None:
                try:
                    layer = self._layer_beside(raster, beside.get(raster.with_suffix(""), []))
                except InputError as error:  # a scene's own label file: --skip-bad skips it
                    self.log.reject(error.reason, error.file or raster, value=error.value)
                    continue
                layer = self._usable(layer) if layer is not None else None
            yield from self._record(raster, layer, shared is not None)
        if shared is not None:
            unused = sorted(set(shared.frame.index) - shared.used)
            if unused:
                self.log.count("label features on no scene", len(unused))
                listed = ", ".join(f"features[{i}]" for i in unused[:5])
                more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
                self.log.warn(
                    f"{len(unused)} features lie on no scene: {listed}{more}", shared.path
                )

    # -- label files ------------------------------------------------------------------------
    def _shared_layer(self) -> LabelLayer | None:
        """The ``labels=FILE`` layer; its problems stop the run (no scene could be labelled)."""
        if "labels" not in self.options:
            return None
        path = Path(self.options["labels"])
        if not path.is_absolute() and not path.exists():
            path = self.root / path
        if not path.is_file():
            raise InputError("labels file not found", file=path)
        return self._usable(self._read_layer(path))

    def _vector_files(self, rasters: list[Path]) -> dict[Path, list[Path]]:
        """Vector files by their path without suffix; files beside no scene are reported."""
        found: dict[Path, list[Path]] = defaultdict(list)
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() in VECTOR_SUFFIXES and path.is_file():
                found[path.with_suffix("")].append(path)
        scenes = {raster.with_suffix("") for raster in rasters}
        for stem in sorted(set(found) - scenes):
            for path in found[stem]:
                self.log.warn("vector file has no GeoTIFF of the same name beside it", path)
        return {
            stem: sorted(paths, key=lambda p: VECTOR_SUFFIXES.index(p.suffix.lower()))
            for stem, paths in found.items()
        }

    def _layer_beside(self, raster: Path, candidates: list[Path]) -> LabelLayer | None:
        if not candidates:
            self.log.warn("scene has no label file beside it; kept as an unlabelled record", raster)
            return None
        for ignored in candidates[1:]:
            self.log.warn(f"several label files for {raster.name}; using {candidates[0]}", ignored)
        if not self.inside_root(candidates[0]):
            raise InputError("label file resolves outside the dataset root", file=candidates[0])
        return self._read_layer(candidates[0])

    def _read_layer(self, path: Path) -> LabelLayer:
        """Read a vector file and check its CRS and class column.

        Problems raise: a shared file stops the run, a scene's own file is rejected.
        """
        wanted = self.options.get("layer")
        try:
            names = [str(name) for name, _ in pyogrio.list_layers(path)]
            if wanted is not None and wanted not in names:
                raise InputError(
                    f"no layer {wanted!r} (-O layer); the layers are: {', '.join(names)}",
                    file=path,
                )
            layer = wanted if wanted is not None else (names[0] if names else None)
            with warnings.catch_warnings():  # NaN coordinates: each such feature is rejected
                warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
                frame = gpd.read_file(path, engine="pyogrio", layer=layer)
        except (DataSourceError, DataLayerError) as error:
            raise InputError(f"cannot read vector file: {error}", file=path) from None
        if wanted is None and len(names) > 1:
            self.log.warn(
                f"{len(names)} layers ({', '.join(names)}); reading the first, {names[0]!r} "
                "(-O layer=NAME reads another)",
                path,
            )
        if frame.crs is None:
            reason = "vector file has no CRS, so its coordinates cannot be placed on a scene"
            if path.suffix.lower() == ".shp":
                reason += " (a Shapefile keeps its CRS in the .prj file beside it)"
            raise InputError(reason, file=path)
        return LabelLayer(path, frame.reset_index(drop=True), self._category_column(frame, path))

    def _category_column(self, frame: gpd.GeoDataFrame, path: Path) -> str:
        columns = [c for c in frame.columns if c != frame.geometry.name]
        wanted = self.options.get("category_field")
        if wanted is not None and wanted in columns:
            return wanted
        if wanted is None:
            for name in CATEGORY_FIELDS:
                if name in columns:
                    return name
        expected = repr(wanted) if wanted else "'class' or 'category'"
        raise InputError(
            f"no class column {expected} (set -O category_field=NAME); the columns are: "
            + (", ".join(columns) or "none"),
            file=path,
        )

    def _usable(self, layer: LabelLayer) -> LabelLayer:
        """The layer without the features that cannot be labels, each rejected with its reason."""
        keep = [row for row in range(len(layer.frame)) if self._feature_usable(layer, row)]
        return LabelLayer(layer.path, layer.frame.iloc[keep], layer.category_field)

    def _feature_usable(self, layer: LabelLayer, row: int) -> bool:
        geometry = layer.frame.geometry.iloc[row]
        entry = f"features[{row}]"
        if geometry is None or geometry.is_empty:
            self.log.reject("feature has an empty geometry", layer.path, entry=entry)
            return False
        kind = geometry.geom_type
        if kind not in POLYGONAL:
            self.log.reject(
                f"{kind} feature has no outline to box; buffer it into a polygon in your GIS",
                layer.path,
                entry=entry,
                value=geometry.wkt[:80],
            )
            return False
        try:
            check_coordinates(shapely.get_coordinates(geometry), "feature coordinates")
        except GeometryError as error:
            self.log.reject(error.reason, layer.path, entry=entry, value=geometry.wkt[:80])
            return False
        if category_text(layer.frame[layer.category_field].iloc[row]) is None:
            reason = f"feature has no {layer.category_field!r} value"
            self.log.reject(reason, layer.path, entry=entry)
            return False
        return True

    # -- records ----------------------------------------------------------------------------
    def _record(self, raster: Path, layer: LabelLayer | None, shared: bool) -> Iterator[Record]:
        facts = self.image_facts(raster)
        if facts is None:
            return
        objects: list[Object] = []
        meta: dict[str, Any] = {"labelled": layer is not None}
        if layer is not None:
            if facts.crs is None or facts.transform is None:
                self.log.reject("scene has no CRS or geotransform to place labels with", raster)
                return
            meta["label_file"] = self._label_name(layer.path)
            meta["label_crs"] = layer.frame.crs.to_string()
            objects = self._objects(layer, facts, shared)
        yield Record(
            id=f"geo/{self.split or 'all'}/{self.relative_path(raster.with_suffix(''))}",
            dataset="geo",
            split=self.split or "all",
            image=image_info(self.relative_path(raster), facts),
            objects=objects,
            meta=meta,
        )

    def _label_name(self, path: Path) -> str:
        return self.relative_path(path) if path.is_relative_to(self.root) else str(path)

    def _objects(self, layer: LabelLayer, facts: RasterFacts, shared: bool) -> list[Object]:
        """Features on this scene, reprojected to its CRS and turned into pixel polygons."""
        transform = Affine.from_gdal(*facts.transform)
        scene_crs = CRS.from_user_input(facts.crs)
        frame = layer.frame
        if len(frame) and shared:  # cheap envelope test in the file's CRS before reprojecting
            corners = (transform.c, transform.f, *(transform @ (facts.width, facts.height)))
            west, east = sorted(corners[0::2])
            south, north = sorted(corners[1::2])
            envelope = transform_bounds(scene_crs, frame.crs, west, south, east, north)
            frame = frame.iloc[np.unique(frame.sindex.query(shapely.box(*envelope)))]
        pixels = to_pixels(frame.to_crs(scene_crs).geometry.to_numpy(), ~transform)
        rows, pixels = self._placeable(layer, frame.index, pixels)
        objects: list[Object] = []
        for row, shape in zip(rows, shapely.make_valid(pixels), strict=True):
            parts = polygon_parts(shape)
            if not parts:
                self.log.reject(
                    "feature has no area after repair", layer.path, entry=f"features[{row}]"
                )
                continue
            for number, part in enumerate(parts):
                made = self._object(layer, row, part, number if len(parts) > 1 else None, facts)
                if made is not None:
                    made.id = len(objects)
                    objects.append(made)
                    layer.used.add(row)
                elif not shared:
                    where = f"features[{row}]" + (f".parts[{number}]" if len(parts) > 1 else "")
                    self.log.reject(
                        f"feature lies outside its {facts.width}x{facts.height} scene "
                        "(check the file's CRS)",
                        layer.path,
                        entry=where,
                        value=[round(v, 2) for v in part.bounds],
                    )
        if len(parts_split := [o for o in objects if "part" in o.attributes]):
            self.log.count("objects from multi-part features", len(parts_split))
        return objects

    def _placeable(
        self, layer: LabelLayer, rows: Iterable[int], pixels: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        """The features whose pixel coordinates GEOS can repair; the others are rejected.

        A reprojection can make a finite coordinate infinite (a latitude past the pole in Web
        Mercator) or huge (a wrong CRS); one such feature must not lose the scene.
        """
        rows = list(rows)
        keep = np.ones(len(rows), dtype=bool)
        for index, (row, shape) in enumerate(zip(rows, pixels, strict=True)):
            try:
                check_coordinates(shapely.get_coordinates(shape), "pixel coordinates")
            except GeometryError as error:
                keep[index] = False
                layer.used.add(row)  # listed as a reject, not as a feature on no scene
                self.log.reject(
                    f"once placed on the scene, {error.reason} (check the file's CRS)",
                    layer.path,
                    entry=f"features[{row}]",
                )
        return [row for row, kept in zip(rows, keep, strict=True) if kept], pixels[keep]

    def _object(
        self,
        layer: LabelLayer,
        row: int,
        part: shapely.Polygon,
        number: int | None,
        facts: RasterFacts,
    ) -> Object | None:
        ring = [[float(x), float(y)] for x, y in part.exterior.coords[:-1]]
        bbox = polygon_to_clipped_bbox(ring, facts.width, facts.height)
        if bbox is None:
            return None
        values = layer.frame.loc[row]
        attributes: dict[str, Any] = {"feature": int(row)}
        if number is not None:
            attributes["part"] = number
        if part.interiors:
            attributes["holes"] = len(part.interiors)
        for name, value in values.items():
            if name not in (layer.category_field, layer.frame.geometry.name):
                plain = json_value(value)
                if plain is not None:
                    attributes.setdefault(str(name), plain)
        return Object(
            id=0,
            category=category_text(values[layer.category_field]) or "",
            bbox=bbox,
            polygon=ring,
            attributes=attributes,
        )


def to_pixels(geometries: np.ndarray, inverse: Affine) -> np.ndarray:
    """Map coordinates in the scene's CRS to pixel coordinates with the inverse geotransform.

    Rounded to 1e-6 px: a lon/lat round trip leaves ~1e-9 px of noise that would only clutter
    the records (``9.999999999883585`` for 10).
    """

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        with np.errstate(invalid="ignore", over="ignore"):  # checked after, feature by feature
            pixels = np.column_stack(
                [
                    inverse.a * x + inverse.b * y + inverse.c,
                    inverse.d * x + inverse.e * y + inverse.f,
                ]
            )
        return pixels.round(PIXEL_DECIMALS)

    return shapely.transform(geometries, apply)


def polygon_parts(geometry: shapely.Geometry) -> list[shapely.Polygon]:
    """The polygons with area inside any geometry (a repair can yield collections)."""
    parts = shapely.get_parts(geometry)
    polygons: list[shapely.Polygon] = []
    for part in parts:
        if isinstance(part, shapely.Polygon):
            if part.area > 0:
                polygons.append(part)
        elif isinstance(part, shapely.MultiPolygon | shapely.GeometryCollection):
            polygons.extend(polygon_parts(part))
    return polygons


def category_text(value: object) -> str | None:
    """A class value as the label string; None when missing. ``3.0`` from a Shapefile is ``3``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def json_value(value: object) -> object:
    """An attribute value as plain JSON (numpy scalars unwrapped, dates as ISO text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, np.generic):
        return json_value(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
