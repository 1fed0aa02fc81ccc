"""Issue 21, class 5: a truncated image is refused, never read as black or partial pixels.

Each image is written whole, then cut to the first half of its bytes, as an interrupted copy or
download leaves it. GDAL 3.10 reads such a PNG as zeros without an error, and reads a cut
cloud-optimised GeoTIFF from its overviews, so the readers check the file's structure too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.windows import Window
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.errors import InputError
from rsgpt4v.export import export_instructions
from rsgpt4v.instruct import generate_instructions
from rsgpt4v.raster import check_image_bytes, read_rgb8
from rsgpt4v.schema import ImageInfo, Object, Record, write_jsonl

WIDTH, HEIGHT = 96, 64
PIXELS = np.random.default_rng(5).integers(0, 256, (3, HEIGHT, WIDTH), dtype=np.uint8)


def _png(path: Path) -> Path:
    Image.fromarray(PIXELS.transpose(1, 2, 0)).save(path)
    return path


def _jpeg(path: Path) -> Path:
    Image.fromarray(PIXELS.transpose(1, 2, 0)).save(path, quality=90)
    return path


def _geotiff(path: Path, **profile: object) -> Path:
    options = {"driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", **(options | profile)) as target:
        target.write(PIXELS)
    return path


def _cut(path: Path) -> Path:
    """Keep the first half of the file's bytes, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


WRITERS = {"scene.png": _png, "scene.tif": _geotiff, "scene.jpg": _jpeg}


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("max_side", [None, 32])
def test_read_rgb8_refuses_a_truncated_image_naming_it(
    tmp_path: Path, name: str, max_side: int | None
) -> None:
    path = WRITERS[name](tmp_path / name)
    whole = read_rgb8(path, max_side=max_side)
    _cut(path)
    with pytest.raises(InputError, match="image is truncated or corrupt") as caught:
        read_rgb8(path, max_side=max_side)
    assert caught.value.file == str(path) and str(caught.value).startswith(f"{path}: ")
    assert whole.shape[2] == 3  # the whole file read (tests/test_read_rgb8.py: exactly)


def test_a_cut_cloud_optimised_geotiff_is_refused_even_when_its_overviews_survive(
    tmp_path: Path,
) -> None:
    """A COG stores its overviews before the full-resolution tiles: a decimated read of a cut
    one succeeds in GDAL, from the overviews, though the image itself is gone."""
    data = np.random.default_rng(1).integers(0, 256, (3, 1024, 1024), dtype=np.uint8)
    path = tmp_path / "cog.tif"
    profile = {"width": 1024, "height": 1024, "count": 3, "dtype": "uint8", "blocksize": 256}
    with rasterio.open(path, "w", driver="COG", **profile) as target:
        target.write(data)
    _cut(path)
    with pytest.raises(InputError, match=r"cog\.tif: image is truncated or corrupt"):
        read_rgb8(path, max_side=128)


def test_images_that_are_whole_still_read(tmp_path: Path) -> None:
    """No false alarms: bytes after a PNG's IEND, sparse tiles, overviews, BigTIFF, big-endian."""
    png = _png(tmp_path / "a.png")
    trailing = tmp_path / "trailing.png"
    trailing.write_bytes(png.read_bytes() + b"appended by a camera")
    sparse = tmp_path / "sparse.tif"
    tiled = {"tiled": True, "blockxsize": 32, "blockysize": 32, "sparse_ok": True}
    with rasterio.open(sparse, "w", driver="GTiff", **tiled, **_size(3)) as target:
        target.write(PIXELS[:, :32, :32], window=Window(0, 0, 32, 32))
    overviews = _geotiff(tmp_path / "ovr.tif", tiled=True, blockxsize=32, blockysize=32)
    with rasterio.open(overviews, "r+") as target:
        target.build_overviews([2, 4], Resampling.average)
    big = _geotiff(tmp_path / "big.tif", BIGTIFF="YES")
    motorola = _geotiff(tmp_path / "be.tif", ENDIANNESS="BIG")
    expected = PIXELS.transpose(1, 2, 0)
    for path in (png, trailing, overviews, big, motorola):
        assert np.array_equal(read_rgb8(path), expected), path
        assert read_rgb8(path, max_side=32).shape == (21, 32, 3)
    assert np.array_equal(read_rgb8(sparse)[:32, :32], expected[:32, :32])
    assert not read_rgb8(sparse)[32:].any()


def _size(count: int) -> dict[str, object]:
    return {"width": WIDTH, "height": HEIGHT, "count": count, "dtype": "uint8"}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_bytes_stored_as_they_are_must_decode_in_full(tmp_path: Path, name: str) -> None:
    path = WRITERS[name](tmp_path / name)
    data = path.read_bytes()
    check_image_bytes(data, path)
    with pytest.raises(InputError, match="image is truncated or corrupt") as caught:
        check_image_bytes(data[: len(data) // 2], path)
    assert caught.value.file == str(path)


def test_a_corrupt_block_names_gdals_complaint(tmp_path: Path) -> None:
    """Whole but damaged (bytes zeroed in the middle of the pixel data): GDAL's own message."""
    path = _png(tmp_path / "zeroed.png")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"zeroed\.png: image is truncated or corrupt: ") as caught:
        read_rgb8(path)
    assert "Read failed" not in str(caught.value)  # rasterio's wrapper says nothing of the cause


# --- through the CLI: export and instruct ------------------------------------------------------


@pytest.fixture()
def dataset(tmp_path: Path) -> dict[str, Path]:
    """Three records (a good PNG, a PNG and a GeoTIFF that are then cut) and their instructions."""
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    _png(root / "images" / "good.png")
    _png(root / "images" / "cut.png")
    _geotiff(root / "images" / "cut.tif")
    records = []
    for stem, suffix in (("good", "png"), ("cut", "png"), ("cut", "tif")):
        image = ImageInfo(path=f"images/{stem}.{suffix}", width=WIDTH, height=HEIGHT)
        objects = [
            Object(id=0, category="ship", bbox=[10, 10, 30, 20]),
            Object(id=1, category="ship", bbox=[50, 30, 30, 20]),
        ]
        record_id = f"toy/train/{stem}-{suffix}"
        records.append(
            Record(id=record_id, dataset="toy", split="train", image=image, objects=objects)
        )
    write_jsonl(tmp_path / "records.jsonl", records)
    instructions = tmp_path / "instructions.jsonl"
    generate_instructions(tmp_path / "records.jsonl", instructions, tasks="counting")
    _cut(root / "images" / "cut.png")
    _cut(root / "images" / "cut.tif")
    return {"root": root, "records": tmp_path / "records.jsonl", "instructions": instructions}


@pytest.mark.parametrize(
    ("fmt", "output", "options"),
    [
        ("parquet", "train.parquet", {"embed_images": True}),
        ("openai", "train.jsonl", {}),
    ],
)
def test_export_rejects_instructions_whose_image_is_cut(
    dataset: dict[str, Path], tmp_path: Path, fmt: str, output: str, options: dict
) -> None:
    out = tmp_path / "out" / output
    summary = export_instructions(
        dataset["instructions"],
        out,
        fmt=fmt,
        image_root=dataset["root"],
        skip_bad=True,
        **options,
    )
    assert summary.written == 1
    reasons = {r.reason for r in summary.rejects}
    assert len(summary.rejects) == 2
    for name in ("cut.png", "cut.tif"):
        assert any(name in r and "image is truncated or corrupt" in r for r in reasons), reasons
    assert summary.rejects_file is not None
    rejected = summary.rejects_file.read_text()
    assert "cut.png" in rejected and "cut.tif" in rejected
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
        assert [row["record_id"] for row in rows] == ["toy/train/good-png"]
        assert rows[0]["image"]["bytes"] == (dataset["root"] / "images" / "good.png").read_bytes()
    else:
        lines = out.read_text().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["messages"]


@pytest.mark.parametrize(("fmt", "output"), [("parquet", "t.parquet"), ("openai", "t.jsonl")])
def test_cli_export_stops_on_a_cut_image_with_one_line(
    dataset: dict[str, Path], tmp_path: Path, fmt: str, output: str
) -> None:
    out = tmp_path / "out" / output
    arguments = ["export", str(dataset["instructions"]), "--format", fmt, "-o", str(out)]
    arguments += ["--image-root", str(dataset["root"])]
    arguments += ["--embed-images"] if fmt == "parquet" else []
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cut.png: image is truncated or corrupt" in result.output
    assert not out.exists()


def test_cli_instruct_stops_on_a_cut_image_with_one_line(
    dataset: dict[str, Path], tmp_path: Path
) -> None:
    """Rules that read pixels (object colours) meet the cut image: exit 2, one line."""
    for name in ("cut.png", "cut.tif"):
        records = tmp_path / f"{name}.jsonl"
        kept = [
            line for line in dataset["records"].read_text().splitlines() if f"images/{name}" in line
        ]
        records.write_text("\n".join(kept) + "\n")
        out = tmp_path / f"{name}.instructions.jsonl"
        arguments = ["instruct", str(records), "-o", str(out), "--image-root"]
        result = CliRunner().invoke(app, [*arguments, str(dataset["root"])])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert name in lines[0] and "image is truncated or corrupt" in lines[0]
        assert not out.exists()


# --- tile ---------------------------------------------------------------------------------------


def _one_record(dataset: dict[str, Path], tmp_path: Path, name: str) -> Path:
    """A records file holding only the record of images/NAME."""
    records = tmp_path / f"{name}.records.jsonl"
    lines = dataset["records"].read_text().splitlines()
    records.write_text("".join(f"{line}\n" for line in lines if f"images/{name}" in line))
    return records


@pytest.mark.parametrize("name", ["cut.png", "cut.tif"])
def test_cli_tile_refuses_a_cut_scene_no_bigger_than_one_tile(
    dataset: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """GDAL reads the missing rows of a cut PNG as zeros: one black tile, were it not checked."""
    records, out, tiles = _one_record(dataset, tmp_path, name), tmp_path / "t.jsonl", tmp_path / "t"
    arguments = ["tile", str(records), "-o", str(out), "--tiles-dir", str(tiles)]
    arguments += ["--image-root", str(dataset["root"])]  # the default size: one tile a scene
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert name in lines[0] and "image is truncated or corrupt" in lines[0]
    assert not out.exists() and not list(tiles.rglob("*.png")) + list(tiles.rglob("*.tif"))

    skipped = CliRunner().invoke(app, [*arguments, "--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert out.read_text() == "" and not list(tiles.rglob("*.*"))
    (reject,) = [json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert reject["file"].endswith(name) and "image is truncated or corrupt" in reject["reason"]


def test_a_rendered_copy_of_a_cut_image_is_a_reject_naming_it(
    dataset: dict[str, Path], tmp_path: Path
) -> None:
    """GeoTIFFs are rendered to PNG for LLaVA: the reject says which image, not only why."""
    summary = export_instructions(
        dataset["instructions"],
        tmp_path / "out" / "train.json",
        fmt="llava",
        image_root=dataset["root"],
        render_images=tmp_path / "out" / "rendered",
        skip_bad=True,
    )
    reasons = [r.reason for r in summary.rejects]
    assert any(
        f"{dataset['root'] / 'images' / 'cut.tif'}: image is truncated or corrupt" in reason
        for reason in reasons
    ), reasons
