"""Write a toy xView tree in the real on-disk layout, with the known defects of the real file.

Run ``python tests/data/xview/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``xView_train.geojson``: a FeatureCollection with the CRS84 header, lon/lat geometries and the
  real property set; ``bounds_imcoords`` strings, one box past the image edge, an empty
  ``bounds_imcoords``, ``type_id`` 75 and 82 (not in the class table) and features of
  ``1395.tif``, which is not in ``train_images/``. ``102.tif`` has no features at all.
- ``xView_bad.geojson`` (read with ``-O geojson=xView_bad.geojson``): malformed features, a box
  of three numbers, a ``type_id`` that is not a number and a feature without ``image_id``.
- ``val_images/``: images only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CRS = {"properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}, "type": "name"}


def _tif(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _feature(image_id: str | None, bounds: str, type_id: object, feature_id: int) -> dict:
    lon, lat = -90.53169885094464 + feature_id * 1e-4, 14.56603647302396
    ring = [[lon, lat], [lon, lat + 1e-4], [lon + 1e-4, lat + 1e-4], [lon + 1e-4, lat], [lon, lat]]
    properties = {
        "bounds_imcoords": bounds,
        "edited_by": "wwoscarbecerril",
        "cat_id": "1040010028371A00",
        "type_id": type_id,
        "ingest_time": "2017/07/24 12:49:09.118+00",
        "index_right": 2356,
        "image_id": image_id,
        "point_geom": "0101000020E6100000616E4E6406A256C03BE6ADA0D6212D40",
        "feature_id": feature_id,
        "grid_file": "Grid2.shp",
    }
    if image_id is None:
        del properties["image_id"]
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def _geojson(path: Path, features: list[dict]) -> None:
    lines = ",\n".join(json.dumps(f) for f in features)
    head = json.dumps({"crs": CRS, "type": "FeatureCollection"})[:-1]
    path.write_text(head + ', "features": [\n' + lines + "\n]}\n", encoding="utf-8")


def make_fixture(root: Path) -> Path:
    """Write the tree under root and return it."""
    root = Path(root)
    _tif(root / "train_images" / "100.tif", 64, 48, seed=1)
    _tif(root / "train_images" / "101.tif", 40, 40, seed=2)
    _tif(root / "train_images" / "102.tif", 32, 32, seed=3)
    _tif(root / "val_images" / "200.tif", 32, 32, seed=4)
    _geojson(
        root / "xView_train.geojson",
        [
            _feature("100.tif", "10,5,30,15", 73, 1),
            _feature("100.tif", "50,30,70,44", 18, 2),  # reaches x=70 in a 64-px image
            _feature("100.tif", "2,2,6,6", 75, 3),  # 75 is not in the class table
            _feature("100.tif", "", 18, 4),  # empty bounds
            _feature("1395.tif", "1,1,5,5", 73, 5),  # the image is missing
            _feature("101.tif", "2,2,12,12", 11, 6),
            _feature("101.tif", "20,20,30,30", 82, 7),
            _feature("1395.tif", "6,6,9,9", 73, 8),
            _feature("101.tif", "14,3,20,9", 62, 9),
        ],
    )
    _geojson(
        root / "xView_bad.geojson",
        [
            _feature("100.tif", "10,5,30,15", 73, 1),
            _feature("100.tif", "1,2,3", 73, 2),  # three numbers
            _feature("101.tif", "2,2,12,12", "seventy", 3),
            _feature(None, "2,2,12,12", 11, 4),
        ],
    )
    return root


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "xview-fixture")))
