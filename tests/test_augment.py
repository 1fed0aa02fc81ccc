"""Box-aware augmentation: the returned boxes follow the pixels they described."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rsgpt4v.errors import InputError, RsgptError
from rsgpt4v.finetune.augment import BoxAwareAugment, ops_safe_for

HEIGHT, WIDTH = 60, 80
REGIONS = {"0": [5.0, 8.0, 20.0, 10.0], "1": [50.0, 30.0, 12.0, 25.0]}
BRIGHT = (255, 255, 0)


def scene() -> np.ndarray:
    """Dark noise with one bright rectangle exactly at each region box."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    for x, y, w, h in REGIONS.values():
        image[int(y) : int(y + h), int(x) : int(x + w)] = BRIGHT
    return image


def bright_extent(image: np.ndarray, box: list[float]) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the bright pixels near ``box`` (a 3-pixel margin)."""
    x, y, w, h = box
    x0, y0 = max(0, int(x) - 3), max(0, int(y) - 3)
    x1, y1 = int(np.ceil(x + w)) + 3, int(np.ceil(y + h)) + 3
    window = np.all(image[y0:y1, x0:x1] == BRIGHT, axis=-1)
    rows, cols = np.nonzero(window)
    return x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1


@pytest.mark.parametrize("op", ["hflip", "vflip", "rotate90", "crop"])
def test_boxes_move_with_the_pixels(op):
    augment = BoxAwareAugment([op], p=1.0, seed=1)
    changed = False
    for _ in range(4):
        image, regions = augment(scene(), REGIONS)
        assert list(regions) == list(REGIONS)
        changed |= image.shape != (HEIGHT, WIDTH, 3) or regions != REGIONS
        for key, box in regions.items():
            assert box[0] >= 0 and box[1] >= 0
            assert box[0] + box[2] <= image.shape[1] + 1e-6
            assert box[1] + box[3] <= image.shape[0] + 1e-6
            x0, y0, x1, y1 = bright_extent(image, box)
            # the box covers exactly the bright rectangle it was drawn from
            assert box[0] == pytest.approx(x0, abs=1e-3), (op, key)
            assert box[1] == pytest.approx(y0, abs=1e-3), (op, key)
            assert box[0] + box[2] == pytest.approx(x1, abs=1e-3), (op, key)
            assert box[1] + box[3] == pytest.approx(y1, abs=1e-3), (op, key)
            assert (x1 - x0, y1 - y0) in {
                (REGIONS[key][2], REGIONS[key][3]),
                (REGIONS[key][3], REGIONS[key][2]),
            }
    assert changed, op


def test_hflip_mirrors_x():
    image, regions = BoxAwareAugment(["hflip"], p=1.0)(scene(), REGIONS)
    assert regions["0"] == pytest.approx([WIDTH - 5 - 20, 8, 20, 10])
    np.testing.assert_array_equal(image, scene()[:, ::-1])


def test_colour_jitter_changes_pixels_not_boxes():
    image, regions = BoxAwareAugment(["colour"], p=1.0, seed=2)(scene(), REGIONS)
    assert regions == REGIONS
    assert image.shape == scene().shape
    assert not np.array_equal(image, scene())


def test_same_seed_same_outputs():
    first = BoxAwareAugment(["hflip", "vflip", "rotate90", "crop", "colour"], seed=5)
    second = BoxAwareAugment(["hflip", "vflip", "rotate90", "crop", "colour"], seed=5)
    for _ in range(5):
        a_image, a_regions = first(scene(), REGIONS)
        b_image, b_regions = second(scene(), REGIONS)
        np.testing.assert_array_equal(a_image, b_image)
        assert a_regions == b_regions


def test_text_with_direction_words_skips_geometry():
    text = "The plane <ref:0> is to the left of the ship <ref:1>."
    assert ops_safe_for(text, ["hflip", "vflip", "rotate90", "crop", "colour"]) == [
        "vflip",
        "colour",
    ]
    assert ops_safe_for("What colour is the roof?", ["colour", "hflip"]) == ["hflip"]
    assert ops_safe_for("How many planes are there?", ["crop", "hflip"]) == ["hflip"]
    augment = BoxAwareAugment(["hflip"], p=1.0)
    image, regions = augment(scene(), REGIONS, text="The plane is in the top-left corner.")
    np.testing.assert_array_equal(image, scene())
    assert regions == REGIONS


def test_bad_inputs_are_named():
    with pytest.raises(RsgptError, match="unknown augmentation op 'blur'"):
        BoxAwareAugment(["blur"])
    with pytest.raises(InputError, match="uint8"):
        BoxAwareAugment(["hflip"])(scene().astype(np.float32), REGIONS)


def test_box_without_area_keeps_the_sample_unmoved(caplog):
    regions = {"0": [5.0, 8.0, 20.0, 10.0], "1": [10.0, 10.0, 0.0, 5.0]}
    with caplog.at_level(logging.WARNING):
        image, moved = BoxAwareAugment(["hflip"], p=1.0)(scene(), regions)
    assert moved == regions
    np.testing.assert_array_equal(image, scene())
    assert "region 1" in caplog.text
