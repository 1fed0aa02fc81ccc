"""File writers the fixture scripts share: noise images and exact text bytes.

Fixture scripts run on their own (``python tests/data/<dataset>/make_fixture.py OUT``), so they
import this module by putting ``tests/data`` on ``sys.path`` first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def noise_image(path: Path, width: int, height: int, seed: int) -> None:
    """A random RGB image of that size, in the format the path's suffix names."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def write_text(path: Path, text: str) -> None:
    """Text written as UTF-8 bytes, line endings exactly as given (CRLF quirks survive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
