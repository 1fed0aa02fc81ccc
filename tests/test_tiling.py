from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.enums import ColorInterp
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.errors import InputError
from rsgpt4v.raster import read_rgb8
from rsgpt4v.schema import ImageInfo, Object, Record, read_jsonl, write_jsonl
from rsgpt4v.tile_windows import devkit_starts, mmrotate_starts, plan_windows
from rsgpt4v.tiling import TileSettings, manifest_path, tile_records

UTM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4650000.0)
BGRN = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]


def _quad(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _object(polygon: list[list[float]], category: str = "ship", **kwargs) -> Object:
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    return Object(id=0, category=category, bbox=bbox, polygon=polygon, **kwargs)


def _png(path: Path, width: int, height: int) -> np.ndarray:
    """A pattern that differs from pixel to pixel (so a shifted window shows) yet packs fast."""
    y, x, band = np.ogrid[:height, :width, :3]
    pixels = ((x * 7 + y * 3 + band * 50) % 256).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def _scene(root: Path, name: str, width: int, height: int, objects: list[Object]) -> Record:
    """A PNG scene under root/images with its record."""
    _png(root / "images" / f"{name}.png", width, height)
    return Record(
        id=f"dota/train/{name}",
        dataset="dota",
        split="train",
        image=ImageInfo(path=f"images/{name}.png", width=width, height=height),
        objects=objects,
        captions=["a whole-scene caption"],
    )


def _tile(tmp_path: Path, records: list[Record], **settings) -> tuple[dict[str, Record], object]:
    write_jsonl(tmp_path / "records.jsonl", records)
    summary = tile_records(
        tmp_path / "records.jsonl",
        tmp_path / "out" / "tiles.jsonl",
        tiles_dir=tmp_path / "tiles",
        image_root=tmp_path,
        settings=TileSettings(**settings),
    )
    tiles = {t.id: t for t in read_jsonl(tmp_path / "out" / "tiles.jsonl", Record)}
    return tiles, summary


# -- windows --------------------------------------------------------------------------------


def test_devkit_golden_windows_and_names() -> None:
    windows = plan_windows(1500, 1100, 1024, 200, "devkit")
    assert [(w.x, w.y) for w in windows] == [(0, 0), (476, 0), (0, 76), (476, 76)]
    assert windows[-1].suffix == "__1__476___76"
    assert windows[-1].bounds == [476, 76, 1024, 1024]
    # the devkit measures objects against right = min(left + size, W - 1)
    assert windows[-1].label_box == (476, 76, 1023, 1023)
    assert windows[0].label_box == (0, 0, 1024, 1024)


def test_mmrotate_grid_and_names() -> None:
    windows = plan_windows(1500, 1100, 1024, 200, "keep")
    assert [(w.x, w.y) for w in windows] == [(0, 0), (476, 0), (0, 76), (476, 76)]
    assert windows[-1].suffix == "__1024__476___76"
    assert windows[-1].label_box == (476, 76, 1024, 1024)


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1500, [0, 476]), (1024, [0]), (700, [0]), (2000, [0, 824, 976]), (1848, [0, 824])],
)
def test_window_starts(length: int, expected: list[int]) -> None:
    assert devkit_starts(length, 1024, 200) == expected
    assert mmrotate_starts(length, 1024, 200) == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"size": 0}, "tile size"),
        ({"size": 64, "gap": 64}, "gap"),
        ({"iof": 0}, "IoF"),
        ({"mode": "mmdet"}, "unknown tiling mode"),
        ({"workers": -1}, "workers"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _tile(tmp_path, [], **settings)


# -- objects cut by a tile edge --------------------------------------------------------------

CUT_LOW = _quad(1000, 100, 1100, 150)  # IoF 0.24 in the first window, inside the second
CUT_HIGH = _quad(950, 300, 1050, 340)  # IoF 0.74 in the first window
DIAMOND = [[1000, 500], [1040, 540], [1000, 580], [960, 540]]  # clip has 5 corners, IoF 0.92
CORNER = [[1024, 984], [1064, 1024], [1024, 1064], [984, 1024]]  # clip is a triangle


@pytest.fixture
def cut_scene(tmp_path: Path) -> Record:
    objects = [_object(p) for p in (CUT_LOW, CUT_HIGH, DIAMOND, CORNER)]
    return _scene(tmp_path, "P9999", 1500, 1100, objects)


def test_devkit_clips_cut_objects_and_marks_small_remnants(
    tmp_path: Path, cut_scene: Record
) -> None:
    tiles, summary = _tile(tmp_path, [cut_scene], size=1024, gap=200, mode="devkit")
    assert sorted(tiles) == [
        f"dota/train/P9999__1__{x}___{y}" for x, y in ((0, 0), (0, 76), (476, 0), (476, 76))
    ]
    first = tiles["dota/train/P9999__1__0___0"].objects
    low, high, diamond = first  # the corner remnant (a triangle) is dropped
    assert low.polygon == _quad(1000, 100, 1024, 150) and low.bbox == [1000, 100, 24, 50]
    assert low.difficult and low.attributes == {"truncated": True}  # IoF 0.24 <= 0.7
    assert high.polygon == _quad(950, 300, 1024, 340)
    assert not high.difficult and high.attributes == {}  # IoF 0.74 > 0.7: original flag
    assert diamond.polygon == [[1000, 500], [1024, 540], [1000, 580], [960, 540]]  # edge merged
    assert not diamond.difficult
    second = tiles["dota/train/P9999__1__476___0"].objects
    assert second[0].polygon == _quad(524, 100, 624, 150) and not second[0].difficult
    # CORNER is cut into a triangle by three windows and lies wholly inside the fourth
    assert summary.counts["tile remnants dropped (devkit keeps 4 or 5 corners)"] == 3
    last = tiles["dota/train/P9999__1__476___76"].objects
    assert last[-1].polygon == [[548, 908], [588, 948], [548, 988], [508, 948]]
    assert "objects in no tile" not in summary.counts
    assert summary.counts["scene captions, QA and labels not carried to tiles"] == 1
    assert all(t.captions == [] for t in tiles.values())


def test_keep_mode_keeps_cut_objects_whole_or_drops_them(tmp_path: Path, cut_scene: Record) -> None:
    tiles, _ = _tile(tmp_path, [cut_scene], size=1024, gap=200, mode="keep")
    first = tiles["dota/train/P9999__1024__0___0"].objects
    assert [o.polygon for o in first] == [CUT_HIGH, DIAMOND]  # CUT_LOW (IoF 0.24) dropped
    high = first[0]
    assert high.bbox == [950, 300, 74, 40]  # box clipped to the tile, polygon not
    assert high.difficult and high.attributes == {"truncated": True}  # IoF < 1
    second = tiles["dota/train/P9999__1024__476___0"].objects
    assert second[0].polygon == _quad(524, 100, 624, 150) and not second[0].difficult


def test_object_boxes_lie_inside_their_tiles(tmp_path: Path, cut_scene: Record) -> None:
    for mode in ("devkit", "keep"):
        tiles, _ = _tile(tmp_path, [cut_scene], mode=mode)
        for tile in tiles.values():
            for item in tile.objects:
                x, y, w, h = item.bbox
                assert x >= 0 and y >= 0 and w > 0 and h > 0
                assert x + w <= tile.image.width and y + h <= tile.image.height


def test_objects_in_no_tile_are_counted(tmp_path: Path) -> None:
    huge = _object(_quad(2, 2, 60, 60), "airport")
    scene = _scene(tmp_path, "P0001", 100, 100, [huge])
    _, summary = _tile(tmp_path, [scene], size=40, gap=10, mode="keep")
    assert summary.counts["objects in no tile"] == 1


# -- pixels, files and georeferencing --------------------------------------------------------


def test_png_tiles_hold_the_window_pixels_and_the_manifest_lists_them(
    tmp_path: Path, cut_scene: Record
) -> None:
    tiles, summary = _tile(tmp_path, [cut_scene], size=1024, gap=200)
    pixels = np.asarray(Image.open(tmp_path / "images" / "P9999.png"))
    tile = tiles["dota/train/P9999__1__476___76"]
    assert tile.image.path == "images/P9999__1__476___76.png"
    assert tile.image.parent == "dota/train/P9999" and tile.image.window == [476, 76, 1024, 1024]
    assert tile.image.crs is None and tile.image.transform is None
    written = np.asarray(Image.open(tmp_path / "tiles" / tile.image.path))
    assert np.array_equal(written, pixels[76:1100, 476:1500])
    lines = [json.loads(x) for x in manifest_path(summary.output).read_text().splitlines()]
    assert len(lines) == summary.tiles == 4
    assert lines[-1] == {
        "tile": "dota/train/P9999__1__476___76",
        "parent": "dota/train/P9999",
        "source_image": "images/P9999.png",
        "image": "images/P9999__1__476___76.png",
        "window": [476, 76, 1024, 1024],
        "transform": None,
    }


def test_image_smaller_than_a_tile_gives_one_unpadded_tile(tmp_path: Path) -> None:
    scene = _scene(tmp_path, "P0002", 50, 40, [_object(_quad(5, 5, 20, 20))])
    tiles, _ = _tile(tmp_path, [scene], size=64, gap=16)
    (tile,) = tiles.values()
    assert tile.id == "dota/train/P0002__1__0___0" and tile.image.window == [0, 0, 50, 40]
    assert (tile.image.width, tile.image.height) == (50, 40)
    assert Image.open(tmp_path / "tiles" / tile.image.path).size == (50, 40)
    assert tile.objects[0].polygon == _quad(5, 5, 20, 20)


def test_geotiff_tiles_keep_their_own_georeferencing(tmp_path: Path) -> None:
    pixels = np.random.default_rng(3).integers(0, 255, (3, 80, 100), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": 100, "height": 80, "count": 3, "dtype": "uint8"}
    (tmp_path / "scenes").mkdir()
    with rasterio.open(
        tmp_path / "scenes" / "a.tif", "w", crs="EPSG:32633", transform=UTM, **profile
    ) as scene:
        scene.write(pixels)
    record = Record(
        id="geo/all/scenes/a",
        dataset="geo",
        split="all",
        image=ImageInfo(
            path="scenes/a.tif",
            width=100,
            height=80,
            gsd=0.5,
            crs="EPSG:32633",
            transform=list(UTM.to_gdal()),
        ),
        objects=[_object(_quad(40, 20, 50, 30))],
    )
    tiles, summary = _tile(tmp_path, [record], size=64, gap=16)
    assert sorted(tiles) == [f"geo/all/scenes/a__1__{x}___{y}" for x in (0, 36) for y in (0, 16)]
    tile = tiles["geo/all/scenes/a__1__36___16"]
    expected = UTM @ Affine.translation(36, 16)
    assert tile.image.transform == pytest.approx(list(expected.to_gdal()))
    assert tile.image.crs == "EPSG:32633" and tile.image.gsd == 0.5
    assert tile.image.path == "scenes/a__1__36___16.tif"
    with rasterio.open(tmp_path / "tiles" / tile.image.path) as written:
        assert written.crs.to_epsg() == 32633
        assert written.transform.almost_equals(expected)
        assert np.array_equal(written.read(), pixels[:, 16:80, 36:100])
    assert tile.objects[0].polygon == _quad(4, 4, 14, 14)
    manifest = [json.loads(x) for x in manifest_path(summary.output).read_text().splitlines()]
    assert [m["transform"] for m in manifest if m["tile"] == tile.id] == [tile.image.transform]


def _single_scene(path: Path, width: int, height: int) -> Record:
    return Record(
        id=f"geo/all/scenes/{path.stem}",
        dataset="geo",
        split="all",
        image=ImageInfo(path=f"scenes/{path.name}", width=width, height=height),
        objects=[_object(_quad(40, 20, 50, 30))],
    )


def test_tiles_are_shown_as_their_scene_band_tags_and_palette_kept(tmp_path: Path) -> None:
    """A BGRN GeoTIFF's band tags, and a palette GeoTIFF's or PNG's colour map, go to the tiles:
    read_rgb8 of a tile is the scene's picture in that window."""
    (tmp_path / "scenes").mkdir()
    rng = np.random.default_rng(4)
    bgrn = tmp_path / "scenes" / "bgrn.tif"
    profile = {"driver": "GTiff", "width": 100, "height": 80, "dtype": "uint8"}
    with rasterio.open(bgrn, "w", count=4, **profile) as scene:
        scene.write(rng.integers(0, 255, (4, 80, 100), dtype=np.uint8))
        scene.colorinterp = BGRN
    colours = {i: (i, 255 - i, (7 * i) % 256, 255) for i in range(256)}
    palette_tif = tmp_path / "scenes" / "palette.tif"
    with rasterio.open(palette_tif, "w", count=1, **profile) as scene:
        scene.write(rng.integers(0, 255, (1, 80, 100), dtype=np.uint8))
        scene.write_colormap(1, colours)
    picture = Image.fromarray(rng.integers(0, 255, (80, 100), dtype=np.uint8), mode="L")
    picture = picture.convert("P")
    picture.putpalette([value for i in range(256) for value in colours[i][:3]])
    palette_png = tmp_path / "scenes" / "indexed.png"
    picture.save(palette_png)
    scenes = [_single_scene(path, 100, 80) for path in (bgrn, palette_tif, palette_png)]
    tiles, _ = _tile(tmp_path, scenes, size=64, gap=16)
    for scene in scenes:
        tile = tiles[f"{scene.id}__1__36___16"]
        whole = read_rgb8(tmp_path / scene.image.path)
        assert np.array_equal(read_rgb8(tmp_path / "tiles" / tile.image.path), whole[16:80, 36:100])


# -- reruns ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rerun", [{}, {"size": 800, "gap": 100}], ids=["same", "new settings"])
def test_a_rerun_that_dies_mid_tile_leaves_the_previous_tiles_whole(
    tmp_path: Path, cut_scene: Record, monkeypatch: pytest.MonkeyPatch, rerun: dict
) -> None:
    tiles, _ = _tile(tmp_path, [cut_scene], size=1024, gap=200)
    before = {
        t.image.path: (tmp_path / "tiles" / t.image.path).read_bytes() for t in tiles.values()
    }
    records = (tmp_path / "out" / "tiles.jsonl").read_bytes()
    opened, writes = rasterio.open, itertools.count(1)

    def dies_on_the_third_tile(path, mode="r", *args, **kwargs):
        if mode == "w" and next(writes) == 3:  # killed with half a tile on disk
            Path(path).write_bytes(b"\x89PNG\r\n\x1a\nhalf a tile")
            raise KeyboardInterrupt
        return opened(path, mode, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", dies_on_the_third_tile)
    with pytest.raises(KeyboardInterrupt):
        _tile(tmp_path, [cut_scene], **({"size": 1024, "gap": 200} | rerun))
    monkeypatch.undo()
    assert (tmp_path / "out" / "tiles.jsonl").read_bytes() == records
    for tile in tiles.values():
        path = tmp_path / "tiles" / tile.image.path
        assert path.read_bytes() == before[tile.image.path]
        assert read_rgb8(path).shape == (tile.image.height, tile.image.width, 3)
    assert not [p for p in tmp_path.rglob("*") if "partial" in p.name]


# -- bad input -------------------------------------------------------------------------------


def test_missing_image_names_the_record(tmp_path: Path) -> None:
    scene = _scene(tmp_path, "P0003", 40, 40, [])
    (tmp_path / "images" / "P0003.png").unlink()
    with pytest.raises(InputError, match="image not found") as raised:
        _tile(tmp_path, [scene], size=32, gap=8)
    assert raised.value.entry == "dota/train/P0003"
    assert raised.value.file.endswith("records.jsonl")


def test_skip_bad_keeps_the_good_scenes(tmp_path: Path) -> None:
    good = _scene(tmp_path, "P0004", 40, 40, [])
    wrong_size = _scene(tmp_path, "P0005", 40, 40, [])
    wrong_size.image.width = 41
    escaping = good.model_copy(deep=True)
    escaping.id, escaping.image.path = "dota/train/outside", "../elsewhere.png"
    write_jsonl(tmp_path / "records.jsonl", [wrong_size, escaping, good])
    summary = tile_records(
        tmp_path / "records.jsonl",
        tmp_path / "tiles.jsonl",
        tiles_dir=tmp_path / "tiles",
        image_root=tmp_path,
        settings=TileSettings(size=32, gap=8),
        skip_bad=True,
    )
    assert summary.records == 3 and summary.tiles == 4
    rejects = [json.loads(x) for x in summary.rejects_file.read_text().splitlines()]
    assert [(r["entry"], r["reason"]) for r in rejects] == [
        ("dota/train/P0005", "record says 41x40, image is 40x40"),
        ("dota/train/outside", "image path leaves the image root"),
    ]
    assert not list((tmp_path / "tiles" / "images").glob("P0005*"))


def test_tile_through_the_cli(tmp_path: Path, cut_scene: Record) -> None:
    write_jsonl(tmp_path / "records.jsonl", [cut_scene])
    out = tmp_path / "tiles.jsonl"
    args = ["tile", str(tmp_path / "records.jsonl"), "-o", str(out)]
    args += ["--tiles-dir", str(tmp_path / "tiles"), "--image-root", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--mode", "keep", "--iof", "0.5"])
    assert result.exit_code == 0, result.output
    assert "4 tiles with" in result.output and "tiles.manifest.jsonl" in result.output
    assert (tmp_path / "tiles" / "images" / "P9999__1024__476___76.png").is_file()
    result = CliRunner().invoke(app, [*args, "--gap", "2000"])
    assert result.exit_code == 2 and "gap" in result.output
    result = CliRunner().invoke(app, ["tile", "--help"])
    assert result.exit_code == 0 and "--tiles-dir" in result.output


def test_box_only_objects_are_cut_as_their_box(tmp_path: Path) -> None:
    hbb = Object(id=0, category="ship", bbox=[20, 4, 20, 8], polygon=None)
    scene = _scene(tmp_path, "P0006", 64, 32, [hbb])
    tiles, _ = _tile(tmp_path, [scene], size=32, gap=0)
    (cut,) = tiles["dota/train/P0006__1__0___0"].objects
    assert cut.polygon is None and cut.bbox == [20, 4, 12, 8]  # IoF 0.6: clipped at x = 32
    assert cut.difficult and cut.attributes == {"truncated": True}
    (rest,) = tiles["dota/train/P0006__1__32___0"].objects
    assert rest.polygon is None and rest.bbox == [1, 4, 7, 8]  # the devkit clamps x = 0 to 1
