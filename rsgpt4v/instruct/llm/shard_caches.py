"""Reply caches per shard, for clusters whose nodes share no SQLite-safe filesystem.

The reply cache is SQLite in WAL mode, which many processes on one machine share safely but
processes on several machines (over NFS, say) do not. On a multi-node cluster every shard task
therefore gets its own cache file, ``CACHE/shards/I-of-N/``, that only it writes:

- before the run, the driver folds any shard caches left by an interrupted run into the main
  cache, then gives each shard the main cache's replies for the records that hash to it, so a
  rerun (with any N) pays nothing for work done before;
- after the run, the driver folds the shard caches into the main cache and removes them.

A task that dies keeps what it paid for in its shard cache; its retry, or the next run, finds it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from rsgpt4v.engines.shards import shard_of
from rsgpt4v.instruct.llm.cache import CACHE_FILE, ReplyCache

_TABLES = ("replies", "settings", "batches")


def shard_cache(main: Path, index: int, count: int) -> Path:
    return main / "shards" / f"{index}-of-{count}"


def _connect(main: Path) -> sqlite3.Connection:
    ReplyCache(main).close()  # creates the file and its tables when new
    return sqlite3.connect(main / CACHE_FILE, timeout=30.0, isolation_level=None)


def fold_shard_caches(main: Path) -> int:
    """Copy every shard cache's replies into the main cache, remove the shard caches; how many
    shard caches were folded."""
    folders = sorted(p for p in (main / "shards").glob("*-of-*") if (p / CACHE_FILE).is_file())
    if not folders:
        return 0
    db = _connect(main)
    try:
        for folder in folders:
            db.execute("ATTACH DATABASE ? AS shard", (str(folder / CACHE_FILE),))
            db.execute("BEGIN")
            for table in _TABLES:
                db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM shard.{table}")
            db.execute("COMMIT")
            db.execute("DETACH DATABASE shard")
    finally:
        db.close()
    shutil.rmtree(main / "shards")
    return len(folders)


def seed_shard_caches(main: Path, count: int) -> None:
    """Fold leftovers, then give shard I of N the main cache's replies of its records."""
    fold_shard_caches(main)
    db = _connect(main)
    db.create_function("shard_of", 2, shard_of, deterministic=True)
    try:
        for index in range(count):
            folder = shard_cache(main, index, count)
            ReplyCache(folder).close()
            db.execute("ATTACH DATABASE ? AS shard", (str(folder / CACHE_FILE),))
            db.execute("BEGIN")
            db.execute(
                "INSERT OR IGNORE INTO shard.replies SELECT * FROM replies "
                "WHERE record_id IS NULL OR shard_of(record_id, ?) = ?",
                (count, index),
            )
            db.execute("INSERT OR IGNORE INTO shard.settings SELECT * FROM settings")
            db.execute("COMMIT")
            db.execute("DETACH DATABASE shard")
    finally:
        db.close()
