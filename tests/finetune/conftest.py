"""Fixtures the fine-tuning tests share: the demo's data and tiny models, one torch thread."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rsgpt4v.demo import run_demo  # noqa: E402
from rsgpt4v.finetune.tiny import save_tiny_model  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared CI box they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("demo")).sample.parent


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "llava", "llava")


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen", "qwen2vl")
