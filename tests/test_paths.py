"""Image paths taken from input files never leave the folder the user named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsgpt4v.errors import InputError
from rsgpt4v.paths import under_root


def test_paths_inside_the_root_resolve(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    assert under_root(tmp_path, "images/a.tif") == tmp_path / "images/a.tif"
    assert under_root(tmp_path, "images/../b.png") == tmp_path / "images/../b.png"


@pytest.mark.parametrize("escape", ["../secret.tif", "images/../../secret.tif", "/etc/passwd"])
def test_paths_leaving_the_root_are_refused(tmp_path: Path, escape: str) -> None:
    with pytest.raises(InputError, match="leaves the image root") as error:
        under_root(tmp_path / "root", escape, file="records.jsonl", entry="dota/train/P1")
    assert escape in str(error.value) and "records.jsonl" in str(error.value)


def test_a_symlink_pointing_out_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside.tif"
    root.mkdir()
    outside.write_bytes(b"x")
    (root / "link.tif").symlink_to(outside)
    with pytest.raises(InputError):
        under_root(root, "link.tif")


def test_an_llm_record_whose_image_leaves_the_root_is_never_read(tmp_path: Path) -> None:
    """The LLM pass would otherwise send a file the user never chose to a remote API."""
    from rsgpt4v.instruct.llm.prepare import PrepareOptions, prepare_record
    from rsgpt4v.schema import ImageInfo, Record

    (tmp_path / "root").mkdir()
    (tmp_path / "private.png").write_bytes(b"not for the API")
    record = Record(
        id="r/1", dataset="x", split="train",
        image=ImageInfo(path="../private.png", width=8, height=8),
    )  # fmt: skip
    options = PrepareOptions(tmp_path / "root", "low", None, colour_facts=False)
    failure = prepare_record(record, options)
    assert isinstance(failure, str) and "leaves the image root" in failure


def test_image_root_is_checked_once_and_refuses_what_leaves_it_or_is_missing(tmp_path) -> None:
    import pytest

    from rsgpt4v.errors import InputError
    from rsgpt4v.paths import ImageRoot

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    root = ImageRoot(tmp_path / "images")
    assert root.existing("a.png", entry="r1") == tmp_path / "images" / "a.png"
    assert ImageRoot.of(None) is None and ImageRoot.of(root) is root
    with pytest.raises(InputError, match="leaves the image root"):
        root.existing("../secret.png", entry="r1")
    with pytest.raises(InputError, match="image not found under the image root"):
        root.existing("b.png", entry="r1")
    with pytest.raises(InputError, match="image root is not a folder"):
        ImageRoot(tmp_path / "secret.png")


def test_predict_refuses_an_image_that_leaves_the_image_root(tmp_path: Path) -> None:
    """An evaluation item's image goes through the same ImageRoot as every stage's."""
    from rsgpt4v.evaluate.predict import load_image
    from rsgpt4v.evaluate.references import EvalItem
    from rsgpt4v.paths import ImageRoot

    (tmp_path / "root").mkdir()
    item = EvalItem(
        id="q1", record_id="r1", image="../secret.png", image_size=[4, 4], task="vqa",
        metric="vqa", question="Is it?", references=["yes"],
    )  # fmt: skip
    with pytest.raises(InputError, match="leaves the image root") as raised:
        load_image(item, ImageRoot(tmp_path / "root"), None)
    assert raised.value.entry == "q1"
