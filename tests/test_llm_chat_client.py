"""The chat client: the openai SDK's retry policy, against the fake server and in its parts."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from rsgpt4v.instruct.llm.chat_client import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    ChatClient,
    environment_proxy,
    error_fields,
    retry_wait,
    server_delay,
    should_retry,
)
from rsgpt4v.instruct.llm.passes import PASSES, response_format
from tests.fake_openai_server import FakeOpenAIServer

BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Describe the image."}],
    "max_tokens": 100,
    "response_format": response_format(PASSES["global"], "json_schema"),
}


@pytest.fixture
def server():
    with FakeOpenAIServer() as running:
        yield running


def create(base_url: str, body: dict = BODY, **options) -> dict:
    async def run() -> dict:
        values = {"timeout_s": 5.0, "max_retries": 2, "connections": 4} | options
        client = ChatClient(api_key="sk-test", base_url=base_url, **values)
        try:
            return await client.create(body)
        finally:
            await client.close()

    return asyncio.run(run())


def test_a_completion_comes_back_as_json(server: FakeOpenAIServer) -> None:
    completion = create(server.base_url)
    assert completion["choices"][0]["message"]["content"]
    assert server.calls["chat"] == 1 and server.authorizations == {"Bearer sk-test"}


@pytest.mark.parametrize("kind", ["500", "429"])
def test_server_errors_and_rate_limits_are_retried_then_reported(
    server: FakeOpenAIServer, kind: str
) -> None:
    server.inject_faults(1.0, kinds=(kind,))
    with pytest.raises(ApiError) as raised:
        create(server.base_url, max_retries=2)
    assert raised.value.status == int(kind)
    assert server.calls["chat"] == 3  # the first attempt and two retries


def test_exhausted_quota_is_not_retried(server: FakeOpenAIServer) -> None:
    server.quota_after = 0
    with pytest.raises(ApiError) as raised:
        create(server.base_url, max_retries=3)
    assert (raised.value.status, raised.value.code) == (429, "insufficient_quota")
    assert server.calls["quota"] == 1


def test_a_bad_request_is_not_retried(server: FakeOpenAIServer) -> None:
    server.reject_json_schema = True
    with pytest.raises(ApiError) as raised:
        create(server.base_url)
    assert raised.value.status == 400 and "json_schema" in raised.value.message
    assert server.calls["chat"] == 1


def test_timeouts_are_retried_then_reported(server: FakeOpenAIServer) -> None:
    server.inject_faults(1.0, kinds=("timeout",))
    server.timeout_delay = 3.0
    start = time.perf_counter()
    with pytest.raises(ApiTimeout):
        create(server.base_url, timeout_s=0.2, max_retries=1)
    assert server.calls["fault_timeout"] == 2
    assert time.perf_counter() - start < 2.5  # each attempt cut at 0.2 s, not after 3 s


def test_a_server_that_is_not_there_is_a_connection_error() -> None:
    with pytest.raises(ApiConnectionError):
        create("http://127.0.0.1:9/v1", max_retries=0)


def test_the_server_decides_the_wait_when_it_names_one() -> None:
    assert server_delay({"retry-after-ms": "250"}) == 0.25
    assert server_delay({"retry-after": "3"}) == 3.0
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 < server_delay({"retry-after": in_ten}) <= 10
    assert server_delay({"retry-after": "soon"}) is None and server_delay({}) is None
    assert retry_wait(0, {"retry-after-ms": "1500"}) == 1.5


def test_backoff_doubles_from_half_a_second_up_to_eight_with_jitter() -> None:
    for retries, full in [(0, 0.5), (1, 1.0), (2, 2.0), (4, 8.0), (9, 8.0)]:
        waits = [retry_wait(retries) for _ in range(50)]
        assert all(0.75 * full <= wait <= full for wait in waits)
    assert 0.375 <= retry_wait(0, {"retry-after": "61"}) <= 0.5  # over a minute: backoff instead


@pytest.mark.parametrize(
    ("status", "headers", "code", "retried"),
    [
        (500, {}, None, True),
        (503, {}, None, True),
        (408, {}, None, True),
        (409, {}, None, True),
        (429, {}, "rate_limit_exceeded", True),
        (429, {}, "insufficient_quota", False),
        (400, {}, None, False),
        (401, {}, None, False),
        (500, {"x-should-retry": "false"}, None, False),
        (400, {"x-should-retry": "true"}, None, True),
        (503, {"retry-after": "300"}, None, False),  # more than two minutes: give up
    ],
)
def test_which_errors_are_retried(status: int, headers: dict, code, retried: bool) -> None:
    assert should_retry(status, headers, code) is retried


def test_error_messages_come_from_openai_error_bodies_or_the_text() -> None:
    body = '{"error": {"message": "Rate limit reached.", "code": "rate_limit_exceeded"}}'
    assert error_fields(429, body) == ("Rate limit reached.", "rate_limit_exceeded")
    assert error_fields(404, '{"error": "model not found"}') == ("model not found", None)
    assert error_fields(502, "<html>Bad gateway</html>") == ("<html>Bad gateway</html>", None)
    assert error_fields(500, "") == ("HTTP 500", None)


def test_the_proxy_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert environment_proxy("https://api.openai.com/v1/chat/completions") == (
        "http://proxy.example:3128"
    )
    assert environment_proxy("http://localhost:8000/v1/chat/completions") is None
