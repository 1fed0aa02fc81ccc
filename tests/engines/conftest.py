"""The engines' tests: ``--engine ray`` writes the local engine's files, line for line, on a
2-CPU local Ray.

One Ray instance serves the package (it takes seconds to start); the API key of the fake server
is in the environment before it starts, so its workers inherit it as a cluster's nodes would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.instruct.llm.settings import LlmSettings
from tests.fake_openai_server import FakeOpenAIServer
from tests.llm_fixtures import make_llm_records

ray = pytest.importorskip("ray")

KEY_ENV = "RSGPT4V_SCALE_TEST_KEY"
runner = CliRunner()


@pytest.fixture(scope="package", autouse=True)
def ray_cluster():
    from rsgpt4v.engines.ray import quiet_ray_data

    os.environ[KEY_ENV] = "sk-rsgpt4v-scale-test"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    quiet_ray_data()
    yield
    ray.shutdown()
    del os.environ[KEY_ENV]


@pytest.fixture(scope="package")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_llm_records(tmp_path_factory.mktemp("scale_records"), 9)


@pytest.fixture(scope="package")
def server():
    with FakeOpenAIServer() as running:
        yield running


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def invoke(*args: object) -> str:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def settings(server: FakeOpenAIServer, records: Path, cache: Path, **changes) -> LlmSettings:
    values = dict(
        model="gpt-4o",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        image_root=records.parent,
        cache_dir=cache,
        concurrency=2,
        max_retries=6,
        timeout_s=5.0,
    )
    return LlmSettings(**(values | changes))
