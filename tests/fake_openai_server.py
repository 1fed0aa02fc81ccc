"""An OpenAI-compatible HTTP server on 127.0.0.1 for the LLM tests and bench/llm.py.

It answers ``/v1/chat/completions`` (text and image parts, ``response_format`` json_schema or
json_object), ``/v1/files`` and ``/v1/batches`` the way the real API does, so the real ``openai``
client drives it. Its "model" reads the object table from the prompt and writes valid replies
about those objects. Faults are injected on demand: 429, 500, timeouts (a reply slower than the
client waits), malformed JSON, quota exhaustion, servers that reject json_schema. Every call is
counted, so a test can prove that a resumed run calls nothing.

Run it alone with ``python tests/fake_openai_server.py --latency 0.2`` (it prints its base URL).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from aiohttp import web

_ROW = re.compile(r"^\{\"id\":.*\}$", re.MULTILINE)
_PASS_OF_SCHEMA = {
    "local_reply": "local",
    "global_reply": "global",
    "multi_turn_reply": "multi_turn",
    "single_question_reply": "single_question",
}
_PASS_OF_TEXT = {
    "Task: local pass": "local",
    "Task: global pass": "global",
    "Task: multi-turn pass": "multi_turn",
    "Task: answer one question": "single_question",
}


def fake_reply(pass_name: str, objects: list[dict]) -> dict:
    """What the fake model answers: valid, and about the objects of the prompt's table."""
    ids = [o["id"] for o in objects]
    first = f"<ref:{ids[0]}>" if ids else "the scene"
    if pass_name == "local":
        return {
            "objects": [
                {
                    "id": o["id"],
                    "attributes": [o.get("colour") or "grey", o.get("size_class", "small")],
                    "description": f"A {o.get('size_class', 'small')} object seen from above, "
                    f"with a clear outline and a shadow on one side.",
                }
                for o in objects
            ],
            "relations": [
                {"subject": a, "predicate": "next to", "object": b}
                for a, b in itertools.pairwise(ids)
            ],
        }
    if pass_name == "global":
        return {
            "description": f"An overhead view of a built-up area. {first} stands out against "
            "the ground, and the other labelled objects are spread around it in small groups."
        }
    if pass_name == "multi_turn":
        return {
            "turns": [
                {"question": "What kind of area is this?", "answer": "A developed area."},
                {"question": f"What is notable about {first}?", "answer": f"{first} is clear."},
                {"question": "Why are the objects grouped so?", "answer": "They share a use."},
            ]
        }
    return {"answer": f"It is {first}, seen from above."}


class FakeOpenAIServer:
    """The server, run in a background thread (a context manager) or alone (:func:`main`).

    Settings may be changed between runs: ``latency`` (seconds per chat call), ``fault_rate``
    and ``fault_kinds`` ("429", "500", "timeout"), ``timeout_delay`` (how long a timeout fault
    waits), ``reply_hook(pass_name, reply_dict, body) -> str | None`` (the content to send
    instead, e.g. malformed JSON), ``reject_json_schema``, ``quota_after`` (chat calls that
    succeed before every call answers 429 insufficient_quota), ``bad_request_echoing_key``
    (400s whose message quotes the caller's key, as real servers do), ``batch_fail_lines``,
    ``omit_usage`` (replies without ``usage``, as some servers send), ``usage_scale`` (usage
    reported that many times larger: a server that bills above any estimate) and
    ``retry_after`` (every chat call answers 429 with this ``Retry-After``, in seconds).
    """

    def __init__(self, *, latency: float = 0.0, seed: int = 0, keep_bodies: bool = True) -> None:
        self.latency = latency
        self.fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = ("429", "500", "timeout")
        self.timeout_delay = 2.0
        self.reply_hook: Callable[[str, dict, dict], str | None] | None = None
        self.reject_json_schema = False
        self.quota_after: int | None = None
        self.bad_request_echoing_key = False  # every chat call: 400 quoting the bearer token
        self.batch_fail_lines = 0  # the next batch lines to answer in an error file instead
        self.omit_usage = False
        self.usage_scale = 1.0
        self.retry_after: str | None = None
        self.keep_bodies = keep_bodies
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.authorizations: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self._random = random.Random(seed)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.base_url = ""

    # --- running -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches/{batch_id}", self._get_batch)
        return app

    async def start(self, port: int = 0) -> web.AppRunner:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return runner

    def __enter__(self) -> FakeOpenAIServer:
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            runner = self._loop.run_until_complete(self.start())
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset_counts(self) -> None:
        self.calls.clear()
        self.bodies.clear()

    # --- chat ----------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.Response:
        self.calls["chat"] += 1
        self.authorizations.add(request.headers.get("Authorization", ""))
        body = await request.json()
        if self.keep_bodies:
            self.bodies.append(body)
        if self.quota_after is not None and self.calls["chat_ok"] >= self.quota_after:
            self.calls["quota"] += 1
            return _error(429, "You exceeded your current quota.", "insufficient_quota", retry_ms=5)
        if self.bad_request_echoing_key:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(400, f"Invalid request from key {token}; malformed image", None)
        if self.retry_after is not None:
            self.calls["retry_after"] += 1
            headers = {"retry-after": self.retry_after}
            return _error(429, "Rate limit reached.", "rate_limit_exceeded", headers=headers)
        fault = self._fault()
        if fault == "429":
            self.calls["fault_429"] += 1
            return _error(429, "Rate limit reached.", "rate_limit_exceeded", retry_ms=5)
        if fault == "500":
            self.calls["fault_500"] += 1
            return _error(500, "The server had an error.", None, retry_ms=5)
        if fault == "timeout":
            self.calls["fault_timeout"] += 1
            await asyncio.sleep(self.timeout_delay)
        fmt = body.get("response_format") or {}
        if self.reject_json_schema and fmt.get("type") == "json_schema":
            self.calls["rejected_schema"] += 1
            return _error(400, "response_format json_schema is not supported", None)
        if self.latency:
            await asyncio.sleep(self.latency)
        self.calls["chat_ok"] += 1
        return web.json_response(self.completion(body))

    def inject_faults(self, rate: float, kinds: tuple[str, ...] = ("429", "500", "timeout"),
                      seed: int = 0) -> None:  # fmt: skip
        """Answer a ``rate`` share of chat calls with one of ``kinds`` (drawn with ``seed``)."""
        self.fault_rate, self.fault_kinds, self._random = rate, kinds, random.Random(seed)

    def _fault(self) -> str | None:
        if self.fault_rate and self._random.random() < self.fault_rate:
            return self._random.choice(self.fault_kinds)
        return None

    def completion(self, body: dict) -> dict:
        """The chat.completion object the fake model answers ``body`` with."""
        texts, images = [], 0
        for message in body["messages"]:
            content = message["content"]
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content:
                if part["type"] == "text":
                    texts.append(part["text"])
                elif part["type"] == "image_url":
                    if not part["image_url"]["url"].startswith("data:image/jpeg;base64,"):
                        raise web.HTTPBadRequest(text="image_url must be a JPEG data URL")
                    images += 1
        text = "\n".join(texts)
        pass_name = self._pass_of(body, text)
        objects = [json.loads(row) for row in _ROW.findall(text)]
        reply = fake_reply(pass_name, objects)
        content = None
        if self.reply_hook is not None:
            content = self.reply_hook(pass_name, reply, body)
        if content is None:
            content = json.dumps(reply)
        prompt_tokens = round((len(text) // 4 + 85 * images) * self.usage_scale)
        completion_tokens = round((len(content) // 4 + 1) * self.usage_scale)
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }
        if self.omit_usage:
            del completion["usage"]
        return completion

    @staticmethod
    def _pass_of(body: dict, text: str) -> str:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return _PASS_OF_SCHEMA[fmt["json_schema"]["name"]]
        for marker, name in _PASS_OF_TEXT.items():
            if marker in text:
                return name
        raise web.HTTPBadRequest(text="the fake model cannot tell which pass this is")

    # --- files and batches ---------------------------------------------------------------
    async def _upload(self, request: web.Request) -> web.Response:
        self.calls["files"] += 1
        form = await request.post()
        upload = form["file"]
        data = upload.file.read()  # type: ignore[union-attr]
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = data
        return web.json_response(_file_object(file_id, data, str(form.get("purpose", "batch"))))

    async def _file_content(self, request: web.Request) -> web.Response:
        self.calls["file_content"] += 1
        data = self.files.get(request.match_info["file_id"])
        if data is None:
            return _error(404, "No such file", None)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        self.calls["batches"] += 1
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return _error(400, "input file not found", None)
        batch_id = f"batch_{uuid.uuid4().hex[:12]}"
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"],
            "status": "validating",
            "created_at": int(time.time()),
            "output_file_id": None,
            "error_file_id": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        return web.json_response(self.batches[batch_id])

    async def _get_batch(self, request: web.Request) -> web.Response:
        self.calls["batch_polls"] += 1
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "No such batch", None)
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress":
            self._complete(batch)
        return web.json_response(batch)

    def _complete(self, batch: dict) -> None:
        """Answer every line of the input file (``batch_fail_lines`` of them as errors)."""
        lines = self.files[batch["input_file_id"]].decode("utf-8").splitlines()
        outputs, errors = [], []
        for line in filter(None, lines):
            item = json.loads(line)
            self.calls["batch_requests"] += 1
            if self.batch_fail_lines > 0:
                self.batch_fail_lines -= 1
                error = {"code": "server_error", "message": "The server had an error."}
                errors.append({"custom_id": item["custom_id"], "response": None, "error": error})
                continue
            outputs.append(
                {
                    "id": f"batch_req_{uuid.uuid4().hex[:8]}",
                    "custom_id": item["custom_id"],
                    "response": {
                        "status_code": 200,
                        "request_id": uuid.uuid4().hex,
                        "body": self.completion(item["body"]),
                    },
                    "error": None,
                }
            )
        for name, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{uuid.uuid4().hex[:12]}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[name] = file_id
        batch["status"] = "completed"
        batch["request_counts"] = {
            "total": len(outputs) + len(errors),
            "completed": len(outputs),
            "failed": len(errors),
        }


def _file_object(file_id: str, data: bytes, purpose: str) -> dict:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(data),
        "created_at": int(time.time()),
        "filename": "input.jsonl",
        "purpose": purpose,
        "status": "processed",
    }


def _error(
    status: int,
    message: str,
    code: str | None,
    retry_ms: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if retry_ms is not None:
        headers = (headers or {}) | {"retry-after-ms": str(retry_ms)}
    body = {"error": {"message": message, "type": "fake_error", "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeOpenAIServer(latency=args.latency, keep_bodies=False)

    async def serve() -> None:
        await server.start(args.port)
        print(server.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
