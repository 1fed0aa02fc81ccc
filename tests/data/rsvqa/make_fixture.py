"""Write toy RSVQA-LR and RSVQA-HR trees in the real layout, with the quirks of the real files.

Run ``python tests/data/rsvqa/make_fixture.py OUT`` to look at it; the tests call ``make_fixture``.

- ``OUT/RSVQA_LR/``: ``Images_LR/<id>.tif`` and ``LR_split_{train,test,val}_*.json``. The split
  files are dense arrays: entries of other splits are ``{"id": N, "active": false}``
  placeholders. train has the rural/urban question without ``?``, a count answer ``"12"`` and
  an image (id 5) that is active but has no question; test holds ids 2 and 3. val is the broken
  split: its image 4 has no file, a question names an inactive image, one has no text.
- ``OUT/RSVQA_HR/``: ``Data/<id>.tif`` and ``USGS_split_{train,test,test_phili}_*.json`` with
  an ``area`` answer ``"1234m2"``, ``res_x: ".1524m"`` and the Philadelphia test set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _tif(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _dense(kind: str, entries: list[dict[str, Any]], length: int) -> dict[str, Any]:
    """A dense array indexed by id: the split's entries, placeholders everywhere else."""
    by_id = {e["id"]: {**e, "active": True} for e in entries}
    return {kind: [by_id.get(i, {"id": i, "active": False}) for i in range(length)]}


def _split(
    root: Path,
    prefix: str,
    split: str,
    images: list[dict[str, Any]],
    qa: list[tuple[int, int, str, str, Any]],
    length: int,
) -> None:
    """Write the three files; qa items are (question id, image id, type, question, answer)."""
    questions = [
        {
            "id": qid,
            "date_added": 1575904123.3,
            "img_id": image,
            "people_id": 0,
            "type": kind,
            "question": text,
            "answers_ids": [qid],
        }
        for qid, image, kind, text, _ in qa
    ]
    answers = [
        {"id": qid, "date_added": 1575904123.3, "question_id": qid, "people_id": 0, "answer": a}
        for qid, _, _, _, a in qa
    ]
    for image in images:
        image["questions_ids"] = [q[0] for q in qa if q[1] == image["id"]]
    for kind, entries in (("images", images), ("questions", questions), ("answers", answers)):
        data = _dense(kind, entries, length)
        (root / f"{prefix}_split_{split}_{kind}.json").write_text(json.dumps(data))


def _image(image_id: int, sensor: str, res: str) -> dict[str, Any]:
    return {
        "id": image_id,
        "date_added": 1575904123.21,
        "original_name": f"tile_{image_id}.tif",
        "sensor": sensor,
        "upperleft_map_x": 123.4 + image_id,
        "upperleft_map_y": 567.8,
        "res_x": res,
        "res_y": res,
        "people_id": 0,
        "type": "RGB",
    }


def make_lr(root: Path) -> None:
    base = root / "RSVQA_LR"
    for image_id in (0, 1, 2, 3, 5):
        _tif(base / "Images_LR" / f"{image_id}.tif", 32, image_id)
    s2 = ("Sentinel-2", "10m")
    _split(
        base,
        "LR",
        "train",
        [_image(0, *s2), _image(1, *s2), _image(5, *s2)],
        [
            (0, 0, "presence", "Is there a building?", "yes"),
            (1, 0, "rural_urban", "Is it a rural or an urban area", "rural"),
            (2, 0, "count", "How many buildings are there in the image?", "12"),
            (3, 1, "comp", "Are there more roads than water areas?", "no"),
        ],
        length=12,
    )
    _split(
        base,
        "LR",
        "test",
        [_image(2, *s2), _image(3, *s2)],
        [
            (4, 2, "presence", "Is a road present?", "yes"),
            (5, 3, "count", "What is the number of water areas in the image?", 3),
        ],
        length=12,
    )
    _split(
        base,
        "LR",
        "val",
        [_image(4, *s2)],
        [
            (6, 4, "presence", "Is there a farmland?", "yes"),  # image 4.tif does not exist
            (7, 9, "presence", "Is there a forest?", "no"),  # image 9 is a placeholder here
        ],
        length=12,
    )
    questions = json.loads((base / "LR_split_val_questions.json").read_text())
    questions["questions"][8] = {"id": 8, "img_id": 4, "type": "count", "answers_ids": [8]}
    (base / "LR_split_val_questions.json").write_text(json.dumps(questions))


def make_hr(root: Path) -> None:
    base = root / "RSVQA_HR"
    for image_id in (0, 1, 2):
        _tif(base / "Data" / f"{image_id}.tif", 64, 10 + image_id)
    usgs = ("ULTRACAM_EAGLE_FALCON", ".1524m")
    _split(
        base,
        "USGS",
        "train",
        [_image(0, *usgs)],
        [
            (0, 0, "area", "What is the area covered by residential buildings?", "1234m2"),
            (1, 0, "comp", "Is the number of roads equal to the number of buildings?", "no"),
        ],
        length=4,
    )
    _split(
        base,
        "USGS",
        "test",
        [_image(1, *usgs)],
        [(2, 1, "presence", "Is there a residential building in the image?", "yes")],
        length=4,
    )
    _split(
        base,
        "USGS",
        "test_phili",
        [_image(2, "unknown", ".1524m")],
        [(3, 2, "count", "How many roads are there?", "4")],
        length=4,
    )


def make_fixture(root: Path) -> Path:
    """Write both variants under root and return it."""
    make_lr(Path(root))
    make_hr(Path(root))
    return Path(root)


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1] if len(sys.argv) > 1 else "rsvqa-fixture")))
