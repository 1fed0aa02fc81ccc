"""Write a toy RSIVQA tree: the repository's text files plus each subset's images.

Run ``python tests/data/rsivqa/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``OUT/RSIVQA/``: LF text files with a final newline, ``:`` after the image in UCM, Sydney and
  AID, ``: `` in DOTA and HRRSD; ``ucm_res.txt`` sorted lexically (``1.tif, 10.tif, 2.tif``)
  with capitalised questions and a missing object (``How many  in the picture?zero``); the
  same UCM image in ``ucm_vqa.txt`` and ``ucm_res.txt``; ``1.tif`` in both UCM and Sydney;
  DOTA/HRRSD keys without extension; RSICD names in the ``AID`` folder.
- ``OUT/RSIVQA-bad/``: one UCM file with a line without ``?``, one with two, one with an empty
  answer and a line whose image does not exist, between good lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _image(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def make_clean(root: Path) -> None:
    base = root / "RSIVQA"
    for seed, name in enumerate(("1.tif", "2.tif", "10.tif")):
        _image(base / "UCM" / "images" / name, 32, seed)
    _lines(
        base / "UCM" / "ucm_vqa.txt",
        [
            "1.tif:what is the theme of this picture?farmland",
            "2.tif:what is the theme of this picture?farmland",
        ],
    )
    _lines(
        base / "UCM" / "ucm_res.txt",
        [
            "1.tif:How many trees in the picture?one",
            "1.tif:What is the location of the trees in this picture?top left corner",
            "10.tif:How many  in the picture?zero",
            "10.tif:What is the location of the  in this picture?i cannot see it",
            "2.tif:Does this picture contain an airplane?no",
        ],
    )
    _image(base / "Sydney" / "images" / "1.tif", 40, 5)
    _lines(base / "Sydney" / "sydney_vqa.txt", ["1.tif:what is the theme of this picture?airport"])
    _image(base / "AID" / "images" / "00433.jpg", 48, 6)
    _image(base / "AID" / "images" / "airport_1.jpg", 48, 7)
    _lines(
        base / "AID" / "rsicd_vqa.txt",
        [
            "00433.jpg:what is the theme of this picture?playfields",
            "airport_1.jpg:what is the theme of this picture?airport",
        ],
    )
    _image(base / "DOTA" / "images" / "P0000.png", 64, 8)
    _image(base / "DOTA" / "images" / "P0003.png", 64, 9)
    _lines(
        base / "DOTA" / "dota_train_vqa2.txt",
        [
            "P0000: how many planes are there in this picture?21",
            "P0000: does this picture contain plane?yes",
        ],
    )
    _lines(base / "DOTA" / "dota_val_vqa2.txt", ["P0003: does this picture contain plane?no"])
    _image(base / "HRRSD" / "images" / "00001.jpg", 56, 10)
    _lines(base / "HRRSD" / "opt_val_vqa.txt", ["00001: does this picture contain ship?no"])


def make_bad(root: Path) -> None:
    base = root / "RSIVQA-bad"
    _image(base / "UCM" / "images" / "1.tif", 32, 11)
    _lines(
        base / "UCM" / "ucm_vqa.txt",
        [
            "1.tif:what is the theme of this picture?farmland",
            "1.tif:what is the theme of this picture farmland",  # no "?"
            "1.tif:is it? or is it?yes",  # two "?"
            "1.tif:what is the theme of this picture?",  # empty answer
            "",
            "7.tif:what is the theme of this picture?beach",  # no such image
            "1.tif:how many trees in the picture?two",
        ],
    )


def make_fixture(root: Path) -> Path:
    """Write the clean and the broken tree under root and return it."""
    make_clean(Path(root))
    make_bad(Path(root))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "rsivqa-fixture")))
