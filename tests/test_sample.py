"""The bundled sample: real DOTA layout and quirks, labels where the drawing is, reproducible."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from rsgpt4v.errors import InputError
from rsgpt4v.sample import CLASS_COLOURS, SAMPLE_GSD, make_sample

NAMES = [f"scene_{i:02d}" for i in range(5)]
REPO = Path(__file__).resolve().parents[1]


def parse_labels(path: Path) -> tuple[list[str], list[tuple[np.ndarray, str, int]]]:
    """Header lines and (4 x 2 corners, category, difficult) per object line."""
    headers, objects = [], []
    for line in path.read_bytes().decode("ascii").split("\r\n")[:-1]:
        tokens = line.split(" ")
        if len(tokens) == 10:
            corners = np.array(tokens[:8], dtype=float).reshape(4, 2)
            objects.append((corners, tokens[8], int(tokens[9])))
        else:
            headers.append(line)
    return headers, objects


def read_pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().transpose(1, 2, 0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample(tmp_path_factory.mktemp("sample"))


def test_layout_has_dota_names(sample: Path) -> None:
    assert sorted(p.name for p in (sample / "images").iterdir()) == [f"{n}.tif" for n in NAMES]
    assert sorted(p.name for p in (sample / "labelTxt").iterdir()) == [f"{n}.txt" for n in NAMES]
    assert (sample / "captions.json").is_file()


def test_geotiffs_are_georeferenced_rgb(sample: Path) -> None:
    shapes = set()
    for name in NAMES:
        with rasterio.open(sample / "images" / f"{name}.tif") as src:
            assert src.crs.to_epsg() == 32633
            assert src.res == (SAMPLE_GSD, SAMPLE_GSD)
            assert src.count == 3
            assert src.dtypes == ("uint8", "uint8", "uint8")
            assert src.profile["compress"] == "deflate"
            assert 400_000 < src.bounds.left < 600_000 and 4e6 < src.bounds.top < 5e6
            shapes.add((src.width, src.height))
    assert (320, 224) in shapes and (256, 256) in shapes


def test_labels_use_crlf_and_dota_headers(sample: Path) -> None:
    for name in NAMES:
        data = (sample / "labelTxt" / f"{name}.txt").read_bytes()
        assert data.endswith(b"\r\n")
        assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
        headers, _ = parse_labels(sample / "labelTxt" / f"{name}.txt")
        assert headers == ["imagesource:rsgpt4v-synthetic", "gsd:0.5"]


def test_label_contents_and_quirks(sample: Path) -> None:
    labels = {name: parse_labels(sample / "labelTxt" / f"{name}.txt")[1] for name in NAMES}
    assert labels["scene_04"] == []
    assert all(labels[name] for name in NAMES[:4])
    objects = [obj for name in NAMES for obj in labels[name]]
    assert len({category for _, category, _ in objects}) >= 4
    assert {category for _, category, _ in objects} <= set(CLASS_COLOURS)
    assert {difficult for _, _, difficult in objects} == {0, 1}
    for corners, _, _ in objects:
        x, y = corners[:, 0], corners[:, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y) > 0  # clockwise on screen
    crossing = []
    for name in NAMES:
        height, width = read_pixels(sample / "images" / f"{name}.tif").shape[:2]
        crossing += [
            c
            for c, _, _ in labels[name]
            if (c < 0).any() or (c[:, 0] > width).any() or (c[:, 1] > height).any()
        ]
    assert len(crossing) == 1


def test_label_polygons_cover_the_drawn_objects(sample: Path) -> None:
    """Inside each label the class colour dominates; in a 6 px ring around it, it does not."""
    checked = 0
    for name in NAMES[:4]:
        pixels = read_pixels(sample / "images" / f"{name}.tif").astype(int)
        ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]] + 0.5
        for corners, category, _ in parse_labels(sample / "labelTxt" / f"{name}.txt")[1]:
            polygon = shapely.Polygon(corners)
            if polygon.area < 60:
                continue
            inside = shapely.contains_xy(polygon, xs, ys)
            ring = shapely.contains_xy(polygon.buffer(6), xs, ys) & ~inside
            matches = np.abs(pixels - CLASS_COLOURS[category]).max(axis=2) <= 35
            share_inside, share_ring = matches[inside].mean(), matches[ring].mean()
            assert share_inside >= 0.25, (name, category, share_inside)
            assert share_ring < share_inside / 3, (name, category, share_ring)
            checked += 1
    assert checked >= 12


def test_same_seed_same_files_other_seed_differs(sample: Path, tmp_path: Path) -> None:
    again = make_sample(tmp_path / "again")
    other = make_sample(tmp_path / "other", seed=1)
    for name in NAMES:
        label = f"labelTxt/{name}.txt"
        image = f"images/{name}.tif"
        assert (again / label).read_bytes() == (sample / label).read_bytes()
        assert (again / image).read_bytes() == (sample / image).read_bytes()
        assert np.array_equal(read_pixels(again / image), read_pixels(sample / image))
        assert not np.array_equal(read_pixels(other / image), read_pixels(sample / image))
    assert (again / "captions.json").read_bytes() == (sample / "captions.json").read_bytes()
    label = "labelTxt/scene_00.txt"
    assert (other / label).read_bytes() != (sample / label).read_bytes()


def test_captions_count_what_is_labelled(sample: Path) -> None:
    raw = (sample / "captions.json").read_bytes()
    raw.decode("ascii")
    captions = json.loads(raw)
    assert list(captions) == sorted(captions) == [f"images/{n}.tif" for n in NAMES]
    mentions = 0
    for name in NAMES:
        texts = captions[f"images/{name}.tif"]
        assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
        counts = Counter(c for _, c, _ in parse_labels(sample / "labelTxt" / f"{name}.txt")[1])
        for category, count in counts.items():
            noun = category.replace("-", " ")
            said = re.search(rf"\b(\d+) {noun}s?\b", texts[1])
            assert said is not None and int(said.group(1)) == count, (name, category, texts[1])
            mentions += 1
    assert mentions >= 10
    assert "no objects" in captions["images/scene_04.tif"][1]


def test_too_small_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="size"):
        make_sample(tmp_path, size=64)


def test_example_script_writes_the_sample(tmp_path: Path) -> None:
    script = REPO / "examples" / "make_sample.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out"), "--seed", "3"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "scene_04.tif" in result.stdout
    assert (tmp_path / "out" / "labelTxt" / "scene_00.txt").is_file()
