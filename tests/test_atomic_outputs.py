"""Every writer stages its output under a new name: nothing at ``OUT.partial`` matters to it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from rsgpt4v.atomic import StagedFiles
from rsgpt4v.errors import RsgptError
from rsgpt4v.exporters.common import ImageRef, atomic_text, write_json_array, write_json_lines
from rsgpt4v.exporters.rendered import ImageRenderer
from rsgpt4v.schema import Message, write_jsonl


def _items(fail: bool) -> Iterator[dict[str, int]]:
    yield {"a": 1}
    if fail:  # a run stopped (Ctrl-C, a failed item) after part of the output was written
        raise KeyboardInterrupt


def _jsonl(out: Path, fail: bool = False) -> None:
    write_jsonl(out, (Message(role="user", content=str(item["a"])) for item in _items(fail)))


def _text(out: Path, fail: bool = False) -> None:
    with atomic_text(out) as handle:
        for item in _items(fail):
            handle.write(f"{item}\n")


WRITERS: dict[str, tuple[Callable[..., None], str]] = {
    "jsonl": (_jsonl, '{"role":"user","content":"1"}\n'),
    "json array": (lambda out, fail=False: write_json_array(_items(fail), out), '[\n{"a": 1}\n]\n'),
    "json lines": (lambda out, fail=False: write_json_lines(_items(fail), out), '{"a": 1}\n'),
    "text": (_text, "{'a': 1}\n"),
}
writers = pytest.mark.parametrize("kind", list(WRITERS))


def _others(folder: Path, *keep: Path) -> list[str]:
    """What the writer left in folder besides the named paths (staged files, say)."""
    return sorted(p.name for p in folder.iterdir() if p not in keep)


@writers
def test_a_folder_at_out_partial_is_no_obstacle(tmp_path: Path, kind: str) -> None:
    write, expected = WRITERS[kind]
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.partial").mkdir()
    write(out)
    assert out.read_text(encoding="utf-8") == expected
    assert _others(tmp_path, out) == ["out.jsonl.partial"]


@writers
def test_a_symlink_at_out_partial_is_never_followed(tmp_path: Path, kind: str) -> None:
    write, expected = WRITERS[kind]
    out, victim = tmp_path / "out.jsonl", tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "out.jsonl.partial").symlink_to(victim)
    write(out)
    assert victim.read_text() == "precious\n"
    assert out.read_text(encoding="utf-8") == expected and not out.is_symlink()
    assert _others(tmp_path, out, victim) == ["out.jsonl.partial"]


@writers
def test_a_failed_write_keeps_the_previous_output(tmp_path: Path, kind: str) -> None:
    write, _ = WRITERS[kind]
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    with pytest.raises(KeyboardInterrupt):
        write(out, fail=True)
    assert out.read_text() == "previous\n"
    assert _others(tmp_path, out) == []


def test_outputs_are_as_readable_as_a_plain_open_makes_them(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _jsonl(tmp_path / "out.jsonl")
    finally:
        os.umask(old)
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o644


def test_an_output_that_is_a_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.mkdir()
    with pytest.raises(RsgptError, match=f"cannot write {out}"):
        write_json_array([], out)
    assert _others(tmp_path, out) == []


def test_staged_files_appear_together_only_when_the_run_succeeds(tmp_path: Path) -> None:
    kept = tmp_path / "a.png"
    kept.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), StagedFiles() as staged:
        staged.stage(kept).write_bytes(b"new")
        staged.stage(tmp_path / "b.png").write_bytes(b"new")
        raise KeyboardInterrupt
    assert kept.read_bytes() == b"old" and _others(tmp_path, kept) == []
    with StagedFiles(sidecars=(".aux.xml",)) as staged:
        staged.stage(kept).write_bytes(b"new")
        Path(f"{staged.stage(tmp_path / 'b.png')}.aux.xml").write_text("<PAMDataset/>")
        (tmp_path / "b.png").write_bytes(b"")  # nothing is written in place meanwhile
        assert kept.read_bytes() == b"old"
    assert kept.read_bytes() == b"new"
    assert _others(tmp_path, kept) == ["b.png", "b.png.aux.xml"]


def test_rendered_copies_never_follow_a_planted_symlink(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    source = root / "scene.tif"
    pixels = np.arange(3 * 8 * 6, dtype=np.uint8).reshape(3, 8, 6)
    with rasterio.open(
        source, "w", driver="GTiff", width=6, height=8, count=3, dtype="uint8"
    ) as tif:
        tif.write(pixels)
    folder = tmp_path / "rendered"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (folder / "scene.tif.png.partial").symlink_to(victim)
    renderer = ImageRenderer(folder, root, tmp_path)
    ref = renderer(ImageRef("scene.tif", "scene.tif", source.resolve()), [6, 8])
    assert victim.read_text() == "precious\n"
    assert ref.file == folder / "scene.tif.png" and not ref.file.is_symlink()
    with Image.open(ref.file) as copy:
        assert np.array_equal(np.asarray(copy), pixels.transpose(1, 2, 0))
    assert _others(folder, ref.file) == ["scene.tif.png.partial"]
