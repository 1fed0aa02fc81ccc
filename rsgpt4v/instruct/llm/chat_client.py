"""POST ``/chat/completions`` over aiohttp, with the openai SDK's retry policy.

The engine sends hundreds of requests per second to local servers; through the openai SDK's
request layer each costs 2-2.5 ms of event-loop CPU (its httpx request model, header and option
merging, the transport adapter), three times what aiohttp alone takes for the same JSON body.
Only this one endpoint is sent here; the Batch API (files, batches) keeps the SDK.

The retry policy is the SDK's, so behaviour against OpenAI does not change:

- retried: connection errors, timeouts, HTTP 408, 409, 429 and 5xx, unless the server says
  ``x-should-retry: false`` (``true`` forces a retry); not retried: 429 ``insufficient_quota``
  (credit does not come back in seconds) and a ``Retry-After`` beyond two minutes;
- the wait: the server's ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date) when it
  is between 0 and 60 s, else 0.5 s doubling per retry up to 8 s, minus up to 25 % jitter;
- ``timeout_s`` bounds each attempt; ``max_retries`` counts the attempts after the first.

Headers are those the SDK sends: ``Authorization: Bearer``, and ``OpenAI-Organization`` /
``OpenAI-Project`` from ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID`` when set. The proxy comes from
the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``; ``NO_PROXY``) as for the SDK,
looked up once per run: aiohttp's ``trust_env`` looks it up for every request, which costs more
than the request.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping

import aiohttp

DEFAULT_BASE_URL = "https://api.openai.com/v1"
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_SERVER_DELAY = 60.0  # a Retry-After up to this is waited for as given
MAX_RETRY_AFTER = 120.0  # beyond this the request is not retried at all
RETRIED_STATUSES = frozenset({408, 409, 429})


class ApiError(Exception):
    """What the client gave up on; ``status`` is None for timeouts and connection errors."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class ApiTimeout(ApiError):
    pass


class ApiConnectionError(ApiError):
    pass


def base_url_of(base_url: str | None) -> str:
    """The server root the SDK would use: the setting, else ``OPENAI_BASE_URL``, else OpenAI."""
    return (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def server_delay(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms``, then ``Retry-After``), or None."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            pass
    when = headers.get("retry-after")
    if when is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(when)
        return None if parsed is None else email.utils.mktime_tz(parsed) - time.time()
    except (TypeError, ValueError, OverflowError):
        return None


def should_retry(status: int, headers: Mapping[str, str], code: str | None) -> bool:
    """The SDK's rule for an error status, plus no retry for exhausted quota."""
    delay = server_delay(headers)
    if delay is not None and math.isfinite(delay) and delay > MAX_RETRY_AFTER:
        return False
    forced = headers.get("x-should-retry")
    if forced in ("true", "false"):
        return forced == "true"
    if status == 429 and code == "insufficient_quota":
        return False
    return status in RETRIED_STATUSES or status >= 500


def retry_wait(retries_done: int, headers: Mapping[str, str] | None = None) -> float:
    """Seconds before the next attempt: the server's delay when sane, else jittered backoff."""
    delay = server_delay(headers) if headers is not None else None
    if delay is not None and math.isfinite(delay) and 0 < delay <= MAX_SERVER_DELAY:
        return delay
    backoff = min(INITIAL_RETRY_DELAY * 2.0 ** min(retries_done, 32), MAX_RETRY_DELAY)
    return backoff * (1 - 0.25 * random.random())


def error_fields(status: int, text: str) -> tuple[str, str | None]:
    """(message, code) of an error reply: OpenAI's ``{"error": {...}}`` shape, else the text."""
    try:
        detail = json.loads(text).get("error")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        message = detail.get("message") or f"HTTP {status}"
        return str(message), detail.get("code") and str(detail.get("code"))
    if isinstance(detail, str):
        return detail, None
    return (text.strip()[:300] or f"HTTP {status}"), None


def environment_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url``, or None (none set, or NO_PROXY lists it)."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class ChatClient:
    """One connection pool for a run; ``await create(body)`` returns the completion as JSON.

    Made inside the running event loop (aiohttp binds its session to it); ``close()`` at the end.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        timeout_s: float,
        max_retries: int,
        connections: int,
    ) -> None:
        self.url = base_url_of(base_url) + "/chat/completions"
        self.max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        for variable, header in (
            ("OPENAI_ORG_ID", "OpenAI-Organization"),
            ("OPENAI_PROJECT_ID", "OpenAI-Project"),
        ):
            if os.environ.get(variable):
                headers[header] = os.environ[variable]
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
        self._json = {"Content-Type": "application/json"}
        self._proxy = environment_proxy(self.url)

    async def create(self, body: dict) -> dict:
        """The completion for ``body``, retried per the policy above; raises :class:`ApiError`."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        retries = 0
        while True:
            try:
                async with self._session.post(
                    self.url, data=data, headers=self._json, proxy=self._proxy
                ) as reply:
                    text = await reply.text()
                    if reply.status < 300:
                        return _completion(text)
                    message, code = error_fields(reply.status, text)
                    if retries >= self.max_retries or not should_retry(
                        reply.status, reply.headers, code
                    ):
                        raise ApiError(message, status=reply.status, code=code)
                    wait = retry_wait(retries, reply.headers)
            except (TimeoutError, asyncio.TimeoutError):
                if retries >= self.max_retries:
                    raise ApiTimeout("request timed out") from None
                wait = retry_wait(retries)
            except aiohttp.ClientError as error:
                if retries >= self.max_retries:
                    raise ApiConnectionError(str(error) or type(error).__name__) from None
                wait = retry_wait(retries)
            retries += 1
            await asyncio.sleep(wait)

    async def close(self) -> None:
        await self._session.close()


def _completion(text: str) -> dict:
    try:
        completion = json.loads(text)
    except ValueError:
        raise ApiError(f"the server's reply is not JSON: {text[:200]!r}", status=200) from None
    if not isinstance(completion, dict) or not completion.get("choices"):
        raise ApiError(f"the server's reply has no choices: {text[:200]!r}", status=200)
    return completion
