"""Write a toy FloodNet Track 2 (VQA) tree in the real layout, with its quirks.

Run ``python tests/data/floodnet-vqa/make_fixture.py OUT``; the tests call ``make_fixture``.

- ``OUT/FloodNet/``: ``Images/{Train,Valid,Test}_Image/*.jpg`` (lower-case suffix on disk) and
  ``Questions/Training Question.json``, ``Valid Question.json`` (spaces) and
  ``Test_Question.json`` (underscore): objects keyed by question id, ``Image_ID`` ending in
  ``.JPG``, ``Ground_Truth`` as text (``flooded``, ``No``) or a JSON number (``3``); the test
  file has no ``Ground_Truth``.
- ``OUT/FloodNet-bad/``: a training file with a question without ``Ground_Truth``, one about an
  image that does not exist and one whose ``Ground_Truth`` is ``true``, between good ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _jpg(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)


def _questions(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(i): e for i, e in enumerate(entries)}))


def _q(image: str, question: str, kind: str, *answer: Any) -> dict[str, Any]:
    entry = {"Image_ID": image, "Question": question}
    if answer:
        entry["Ground_Truth"] = answer[0]
    entry["Question_Type"] = kind
    return entry


CONDITION = "What is the overall condition of the given image?"
BUILDINGS = "How many buildings are in the image?"
FLOODED_ROAD = "Is the entire road flooded?"


def make_clean(root: Path) -> None:
    base = root / "FloodNet"
    for seed, (folder, name) in enumerate(
        [
            ("Train_Image", "10165.jpg"),
            ("Train_Image", "10166.jpg"),
            ("Valid_Image", "10170.jpg"),
            ("Test_Image", "10200.jpg"),
            ("Test_Image", "10201.jpg"),
        ]
    ):
        _jpg(base / "Images" / folder / name, seed)
    questions = base / "Questions"
    _questions(
        questions / "Training Question.json",
        [
            _q("10165.JPG", CONDITION, "Condition_Recognition", "flooded"),
            _q("10165.JPG", BUILDINGS, "Simple_Counting", 3),
            _q("10166.JPG", FLOODED_ROAD, "Yes_No", "No"),
            _q("10166.JPG", "How many non flooded buildings are there?", "Complex_Counting", 2),
        ],
    )
    _questions(
        questions / "Valid Question.json",
        [_q("10170.JPG", CONDITION, "Condition_Recognition", "non flooded")],
    )
    _questions(
        questions / "Test_Question.json",
        [
            _q("10200.JPG", CONDITION, "Condition_Recognition"),
            _q("10200.JPG", BUILDINGS, "Simple_Counting"),
            _q("10201.JPG", FLOODED_ROAD, "Yes_No"),
        ],
    )


def make_bad(root: Path) -> None:
    base = root / "FloodNet-bad"
    _jpg(base / "Images" / "Train_Image" / "10165.jpg", 9)
    _questions(
        base / "Questions" / "Training Question.json",
        [
            _q("10165.JPG", CONDITION, "Condition_Recognition", "flooded"),
            _q("10165.JPG", BUILDINGS, "Simple_Counting"),  # no Ground_Truth in train
            _q("99999.JPG", CONDITION, "Condition_Recognition", "flooded"),  # no such image
            _q("10165.JPG", FLOODED_ROAD, "Yes_No", True),  # not text or a number
        ],
    )


def make_fixture(root: Path) -> Path:
    """Write the clean and the broken tree under root and return it."""
    make_clean(Path(root))
    make_bad(Path(root))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "floodnet-vqa-fixture")))
