"""The request engine: one request of one pass, from cache or from the API, with its accounting.

One retry layer: the openai SDK's (``max_retries``, ``timeout``, exponential backoff honouring
``Retry-After``); nothing here retries. What the SDK gives up on is classified: quota exhaustion
(429 ``insufficient_quota``) and rejected credentials stop the whole run; anything else fails
that request, which a rerun tries again. Every reply is written to the cache before it is parsed,
so a reply is never paid twice; the budget reserves a worst-case estimate before each call and
settles the reported cost after it (the estimate itself when the server reports no usage).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from rsgpt4v.instruct.llm.budget import Budget, Reservation
from rsgpt4v.instruct.llm.cache import CachedReply, ReplyCache, request_key
from rsgpt4v.instruct.llm.images import RenderedImage
from rsgpt4v.instruct.llm.passes import (
    Earlier,
    ParseError,
    PassSpec,
    RecordContext,
    build_messages,
    images_of,
    parse,
    prompt_version,
    reply_schema,
    response_format,
    schema_tokens_bound,
)
from rsgpt4v.instruct.llm.pricing import PriceTable, Usage, estimate_tokens, image_tokens
from rsgpt4v.instruct.llm.reply_checks import check
from rsgpt4v.instruct.llm.settings import LlmSettings, Redactor
from rsgpt4v.instruct.llm.to_instructions import Provenance


@dataclass
class Outcome:
    """The result of one request of one pass of one record."""

    pass_name: str
    status: str  # ok, parse_error, rejected, refused, failed, or unsent (never asked)
    reason: str | None = None
    reply: BaseModel | None = None
    key: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    usage_estimated: bool = False  # the server reported no usage: charged the worst case
    cached: bool = False
    provenance: Provenance | None = None


@dataclass
class PendingRequest:
    """A request collected for the Batch API instead of being sent."""

    key: str
    record_id: str
    pass_name: str
    body: dict
    estimate_usd: float


class Requester:
    """Answers requests from the cache, the API, or (batch mode) collects them.

    ``mode`` is ``call`` (send what the cache lacks), ``collect`` (queue it in ``pending`` for a
    batch) or ``cache_only`` (a miss fails: the batch output lacked it).
    """

    def __init__(
        self,
        settings: LlmSettings,
        cache: ReplyCache,
        prices: PriceTable,
        client: object | None,
        redact: Redactor,
        mode: str = "call",
        budget: Budget | None = None,
        ledger: str | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.prices = prices
        self.price = prices.price_of(settings.model)
        self.client = client
        self.redact = redact
        self.mode = mode
        self.budget = budget if budget is not None else Budget(settings.budget_usd)
        self.ledger = ledger  # the output whose budget ledger paid replies are charged to
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.stopped: str | None = None
        self.fatal = False
        self.calls = 0
        self.pending: list[PendingRequest] = []
        self._format_setting = f"response_format:{settings.base_url or 'openai'}:{settings.model}"
        self.format_mode = cache.setting(self._format_setting) or "json_schema"
        self.vocabulary: dict[str, tuple[str, ...]] = {}  # dataset → its class strings

    def body(self, spec: PassSpec, messages: list[dict], listed: int) -> dict:
        """The request of a pass whose prompt lists ``listed`` objects."""
        return {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": spec.max_tokens(listed),
            "seed": self.settings.seed,
        }

    def estimate(self, spec: PassSpec, body: dict, images: Sequence[RenderedImage]) -> Usage:
        """Worst-case usage of a request: input by bound (the reply schema included, which the
        server adds to the prompt; each image by the tile formula), output at max_tokens."""
        pictures = sum(image_tokens(i.width, i.height, i.detail, self.price) for i in images)
        prompt = estimate_tokens(body["messages"], 0) + pictures + schema_tokens_bound(spec)
        return Usage(prompt, body["max_tokens"], 0)

    def estimate_usd(
        self, spec: PassSpec, body: dict, images: Sequence[RenderedImage], batch: bool = False
    ) -> float:
        """The worst-case cost of a request (:meth:`estimate` at the model's price)."""
        usage = self.estimate(spec, body, images)
        return self.prices.cost(self.settings.model, usage, batch=batch)

    async def run(
        self,
        spec: PassSpec,
        context: RecordContext,
        earlier: Earlier,
        image: RenderedImage | None,
        crops: Sequence[RenderedImage] = (),
    ) -> Outcome:
        """One pass of one record: the scene ``image`` and (the local pass) the ``crops`` of
        the record's small objects, in the order of its crop windows."""
        record = context.record
        vocabulary = self.vocabulary.get(record.dataset, ())
        messages = build_messages(spec, context, earlier, image, crops=crops, vocabulary=vocabulary)
        body = self.body(spec, messages, len(context.listed))
        images = images_of(spec, context, image, crops)
        version = prompt_version(spec)
        key = request_key(
            body,
            pass_name=spec.name,
            prompt_version=version,
            schema=reply_schema(spec.reply),
            image_digests=[i.digest for i in images],
        )
        cached = self.cache.get(key)
        if cached is None:
            if self.stopped:
                return Outcome(spec.name, "unsent", self.stopped, key=key)
            if self.mode == "collect":
                estimate = self.estimate_usd(spec, body, images, batch=True)
                self.pending.append(PendingRequest(key, record.id, spec.name, body, estimate))
                return Outcome(spec.name, "unsent", "collected for a batch", key=key)
            if self.mode == "cache_only":
                return Outcome(spec.name, "failed", "no reply in the batch output", key=key)
            try:
                cached = await self._send(spec, body, key, record.id, images)
            except _RequestFailed as failure:
                return Outcome(spec.name, "failed", failure.reason, key=key)
            if cached is None:
                return Outcome(spec.name, "unsent", self.stopped, key=key)
            fresh = True
        else:
            fresh = False
        provenance = Provenance(
            model=cached.reply.get("model") or self.settings.model,
            prompt_version=version,
            request_hash=key,
            usage=cached.usage,
            cost_usd=cached.cost_usd,
            template=f"llm/{spec.name}",
        )
        outcome = Outcome(
            spec.name,
            "ok",
            key=key,
            usage=cached.usage,
            cost_usd=cached.cost_usd,
            usage_estimated=bool(cached.reply.get("usage_estimated")),
            cached=not fresh,
            provenance=provenance,
        )
        return judge(outcome, spec, cached.reply, context, vocabulary)

    async def _send(
        self, spec: PassSpec, body: dict, key: str, record_id: str, images: Sequence[RenderedImage]
    ) -> CachedReply | None:
        """Call the API within the budget; the reply is cached before anyone parses it."""
        worst = self.estimate(spec, body, images)
        estimate = self.prices.cost(self.settings.model, worst)
        reservation = await self.budget.reserve(estimate)
        if not reservation:
            self.stopped = self._cap_reached(estimate)
            return None
        held = reservation.amount if isinstance(reservation, Reservation) else estimate
        actual = 0.0
        try:
            async with self.slots:
                if self.stopped and self.fatal:
                    return None
                reply, usage = await self._create(spec, body)
            if usage is None:  # nothing reported: charge the worst case held, and say so
                usage, actual = Usage(), held
                reply["usage_estimated"] = True
            else:
                actual = self.prices.cost(self.settings.model, usage)
        finally:
            await self.budget.settle(reservation, actual)
        self.cache.put(
            key,
            record_id=record_id,
            pass_name=spec.name,
            model=self.settings.model,
            reply=reply,
            usage=usage,
            cost_usd=actual,
            charge_to=self.ledger,
        )
        return CachedReply(reply, usage, actual, "sync")

    def _cap_reached(self, estimate: float) -> str:
        """Why the run stops: what was spent of the cap, and by whom, and whether the server
        billed above the estimates (which later reservations were raised for)."""
        budget = self.budget
        earlier = getattr(budget, "earlier", 0.0)  # a shared (Ray) budget keeps no ledger
        ratio = getattr(budget, "ratio", 1.0)
        spent = earlier + budget.spent
        where = (
            f" on this output over all runs (${budget.spent:.4f} by this one)" if earlier else ""
        )
        billed = (
            f"; the server billed up to {ratio:.1f} times the worst-case estimate, which later "
            "reservations allowed for"
            if ratio > 1
            else ""
        )
        return (
            f"budget cap reached: ${spent:.4f} spent{where} of ${self.settings.budget_usd:.4f} "
            f"(the next request may cost up to ${estimate * ratio:.4f}){billed}"
        )

    async def _create(self, spec: PassSpec, body: dict) -> tuple[dict, Usage | None]:
        import openai

        mode = self.format_mode
        try:
            try:
                self.calls += 1
                completion = await self._post(
                    body | {"response_format": response_format(spec, mode)}
                )
            except openai.BadRequestError:
                if mode != "json_schema":
                    raise
                self.calls += 1  # the server may not know json_schema: try JSON mode once
                completion = await self._post(
                    body | {"response_format": response_format(spec, "json_object")}
                )
                if self.format_mode != "json_object":
                    self.format_mode = "json_object"
                    self.cache.set_setting(self._format_setting, "json_object")
        except openai.RateLimitError as error:
            if error.code == "insufficient_quota":
                self._stop(
                    "API quota exhausted (429 insufficient_quota): add credit or raise "
                    "the limit, then rerun; finished work is cached",
                    fatal=True,
                )
                raise _RequestFailed("insufficient_quota") from None
            retried = _retried(error, self.settings.max_retries)
            raise _RequestFailed(f"rate limited (429){retried}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            self._stop(
                f"the server refused the credentials (HTTP {error.status_code}): check "
                f"{self.settings.api_key_env} and --base-url",
                fatal=True,
            )
            raise _RequestFailed(f"HTTP {error.status_code}") from None
        except openai.APIStatusError as error:
            retried = _retried(error, self.settings.max_retries)
            raise _RequestFailed(
                self.redact(f"HTTP {error.status_code}{retried}: {error.message}")[:300]
            ) from None
        except openai.APITimeoutError as error:
            retried = _retried(error, self.settings.max_retries)
            raise _RequestFailed(
                f"timed out{retried} ({self.settings.timeout_s:g} s per attempt)"
            ) from None
        except openai.APIConnectionError as error:
            raise _RequestFailed(self.redact(f"connection error: {error}")[:300]) from None
        return reply_of(completion), usage_of(completion)

    async def _post(self, body: dict) -> dict:
        """POST /chat/completions through the SDK's request layer (its retries, timeouts and
        errors) without its request transform and response models: the body is plain JSON
        already, and the reply is kept as JSON (both cost more than the rest of a request)."""
        return await self.client.post(  # type: ignore[union-attr]
            "/chat/completions", body=body, cast_to=object
        )

    def _stop(self, reason: str, *, fatal: bool) -> None:
        if not self.fatal:
            self.stopped, self.fatal = reason, fatal


class _RequestFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reply_of(completion: dict) -> dict:
    """What is kept of a chat completion: the message, why it ended, and identification."""
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    return {
        "content": message.get("content"),
        "refusal": message.get("refusal"),
        "finish_reason": choice.get("finish_reason"),
        "response_id": completion.get("id"),
        "model": completion.get("model"),
        "system_fingerprint": completion.get("system_fingerprint"),
    }


def usage_of(completion: dict) -> Usage | None:
    """The usage the server reported, or None where it reported none (some servers omit it)."""
    usage = completion.get("usage") or {}
    if usage.get("prompt_tokens") is None or usage.get("completion_tokens") is None:
        return None
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        usage["prompt_tokens"], usage["completion_tokens"], details.get("cached_tokens") or 0
    )


def _retried(error: Exception, max_retries: int) -> str:
    """`` after N retries`` as the SDK counted them (the retry-count header of its last attempt),
    or why it did not retry: the server asked for a longer wait than the SDK allows."""
    try:
        headers = error.request.headers  # type: ignore[attr-defined]
        retries = int(headers.get("x-stainless-retry-count", ""))
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return ""
    said = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
    response = getattr(error, "response", None)
    wait = _retry_after_s(response.headers) if response is not None else None
    if retries < max_retries and wait is not None and wait > _max_retry_after():
        return (
            f"{said}{', then' if retries else ','} not retried: the server asked to wait "
            f"{wait:g} s (Retry-After), longer than the client waits ({_max_retry_after():g} s)"
        )
    return said


def _retry_after_s(headers) -> float | None:
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) / divisor
            except ValueError:
                return None  # an HTTP date: the SDK decides, and the count says what it did
    return None


def _max_retry_after() -> float:
    try:
        from openai._constants import MAX_RETRY_AFTER_DELAY
    except ImportError:  # an SDK without the limit
        return float("inf")
    return float(MAX_RETRY_AFTER_DELAY)


def judge(
    outcome: Outcome, spec: PassSpec, reply: dict, context: RecordContext, vocabulary: tuple
) -> Outcome:
    """Status of a stored reply: refused, parse_error, rejected (with the reason) or ok."""
    if reply.get("refusal"):
        outcome.status, outcome.reason = "refused", str(reply["refusal"])[:300]
        return outcome
    try:
        parsed = parse(spec, reply.get("content"))
    except ParseError as error:
        cut = " (the reply hit max_tokens)" if reply.get("finish_reason") == "length" else ""
        outcome.status, outcome.reason = "parse_error", f"{error}{cut}"[:300]
        return outcome
    reason = check(parsed, context, vocabulary)
    if reason is not None:
        outcome.status, outcome.reason = "rejected", reason
        return outcome
    outcome.reply = parsed
    return outcome
