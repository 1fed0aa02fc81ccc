"""Shards: where a fanned-out run keeps them (``OUTPUT.shards/`` beside the output), and which
hash shard a record belongs to.

Each unit writes its own shard, named by the unit's index, atomically (``JsonlWriter``), so a
retried task rewrites its shard and never adds a second one. The folder is emptied when a run
starts (a stale shard of an earlier run must not be merged) and removed after the merge.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from rsgpt4v.problems import Problem


def shard_of(record_id: str, count: int) -> int:
    """The hash shard of a record: by a hash of its id, so it does not depend on file order."""
    return int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big") % count


def shards_folder(output: str | Path, fresh: bool = True) -> Path:
    """``out.jsonl`` → ``out.jsonl.shards/`` (absolute, for workers on other nodes), emptied."""
    output = Path(output).resolve()
    folder = output.with_name(output.name + ".shards")
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shard_path(folder: str | Path, index: int, kind: str = "part") -> Path:
    return Path(folder) / f"{kind}-{index:06d}.jsonl"


def remove_shards(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def as_given(problems: list[dict], resolved: str | Path, given: str | Path) -> list[Problem]:
    """Problems found by units (which may see absolute paths), named as the user gave the
    paths: ``resolved`` is a file or folder, ``given`` its name as the user wrote it."""
    resolved, given = str(resolved), str(given)
    if resolved == given:
        return [Problem(**problem) for problem in problems]
    out = []
    for problem in problems:
        file = problem["file"]
        if file == resolved or file.startswith(resolved + os.sep):
            file = str(Path(given) / Path(file).relative_to(resolved))
        out.append(Problem(**(problem | {"file": file})))
    return out
