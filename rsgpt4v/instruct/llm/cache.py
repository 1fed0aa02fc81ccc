"""A content-addressed store of paid replies on disk (SQLite, WAL), written before parsing.

The key (:func:`request_key`) hashes what decides the answer: model, pass and prompt version, the
rendered text, the image digest and detail, the reply schema and the sampling parameters; never
the API key, base URL, concurrency or the structured-output mode. A rerun with the same inputs
finds every finished reply here and makes no call; a reply that failed to parse stays here with
its raw text, so it can be re-parsed without paying again. Batch manifests live here too, so a
restarted ``--batch`` run polls its batches instead of submitting them twice, and so does the
budget's ledger: what each output's runs paid (``charges``), which ``--budget-usd`` caps.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.instruct.llm.pricing import Usage

CACHE_FILE = "llm_cache.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies(
    key TEXT PRIMARY KEY, record_id TEXT, pass TEXT, model TEXT, reply TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER,
    cost_usd REAL, via TEXT, created REAL);
CREATE TABLE IF NOT EXISTS settings(name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS batches(
    batch_id TEXT PRIMARY KEY, input_sha256 TEXT, entries TEXT, status TEXT, created REAL);
CREATE TABLE IF NOT EXISTS charges(
    ledger TEXT, key TEXT, cost_usd REAL, created REAL, PRIMARY KEY (ledger, key));
"""


def request_key(
    body: dict,
    *,
    pass_name: str,
    prompt_version: str,
    schema: dict,
    image_digests: Sequence[str] = (),
) -> str:
    """sha256 of the canonical JSON of everything that decides the reply.

    Image parts enter as their digest and detail (never the base64 payload): ``image_digests``
    are the digests of the JPEG bytes of the body's image parts in order (the scene, then any
    crops); a part beyond them enters as the digest of its URL. The ``response_format`` enters
    as the reply schema, so falling back from json_schema to json_object mode keeps the key.
    """
    digests = iter(image_digests)
    messages = []
    for message in body["messages"]:
        content = message["content"]
        if not isinstance(content, str):
            content = [_digest_part(part, digests) for part in content]
        messages.append({"role": message["role"], "content": content})
    canonical = {
        "model": body["model"],
        "pass": pass_name,
        "prompt_version": prompt_version,
        "messages": messages,
        "schema": schema,
        "params": {k: body.get(k) for k in ("temperature", "max_tokens", "seed", "top_p")},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest_part(part: dict, digests: Iterator[str]) -> dict:
    """A content part as the key sees it: an image by the digest of its JPEG bytes."""
    if part.get("type") != "image_url":
        return part
    digest = next(digests, None) or hashlib.sha256(part["image_url"]["url"].encode()).hexdigest()
    return {"type": "image", "sha256": digest, "detail": part["image_url"].get("detail")}


@dataclass(frozen=True)
class CachedReply:
    """A stored reply: the message content (or refusal), why it ended, and what it cost."""

    reply: dict  # content, refusal, finish_reason, response_id, model, system_fingerprint
    usage: Usage
    cost_usd: float
    via: str  # "sync" or "batch"


class ReplyCache:
    """The SQLite store; one connection, used from the event loop thread."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReplyCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> CachedReply | None:
        row = self._db.execute(
            "SELECT reply, prompt_tokens, completion_tokens, cached_tokens, cost_usd, via "
            "FROM replies WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return CachedReply(json.loads(row[0]), Usage(row[1], row[2], row[3]), row[4], row[5])

    def has(self, key: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM replies WHERE key = ?", (key,)).fetchone() is not None
        )

    def put(
        self,
        key: str,
        *,
        record_id: str,
        pass_name: str,
        model: str,
        reply: dict,
        usage: Usage,
        cost_usd: float,
        via: str = "sync",
        charge_to: str | None = None,
    ) -> None:
        """Store a reply, and its cost in the ledger ``charge_to`` names, in one commit (at once:
        a crash right after loses nothing paid for, nor its charge)."""
        now = time.time()
        row = (
            key,
            record_id,
            pass_name,
            model,
            json.dumps(reply, ensure_ascii=False),
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            cost_usd,
            via,
            now,
        )
        insert = "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        if charge_to is None:
            self._db.execute(insert, row)
            return
        self._db.execute("BEGIN")
        try:
            self._db.execute(insert, row)
            self._db.execute(
                "INSERT OR REPLACE INTO charges VALUES (?, ?, ?, ?)",
                (charge_to, key, cost_usd, now),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def charged(self, ledger: str) -> float:
        """USD charged to a ledger so far, by every run."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM charges WHERE ledger = ?", (ledger,)
        ).fetchone()
        return float(row[0])

    def setting(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_setting(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))

    def open_batches(self) -> list[tuple[str, list[list[str]]]]:
        """(batch id, [[request key, record id, pass], ...]) of batches not yet ingested."""
        rows = self._db.execute(
            "SELECT batch_id, entries FROM batches WHERE status = 'submitted' ORDER BY created"
        ).fetchall()
        return [(batch_id, json.loads(entries)) for batch_id, entries in rows]

    def add_batch(self, batch_id: str, input_sha256: str, entries: list[list[str]]) -> None:
        """Record a submitted batch before waiting on it, so a restart polls it again."""
        self._db.execute(
            "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, 'submitted', ?)",
            (batch_id, input_sha256, json.dumps(entries), time.time()),
        )

    def close_batch(self, batch_id: str, status: str) -> None:
        self._db.execute("UPDATE batches SET status = ? WHERE batch_id = ?", (status, batch_id))
