"""Where a fanned-out run keeps its shards: ``OUTPUT.shards/`` beside the output.

Each unit writes its own shard, named by the unit's index, atomically (``JsonlWriter``), so a
retried task rewrites its shard and never adds a second one. The folder is emptied when a run
starts (a stale shard of an earlier run must not be merged) and removed after the merge.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rsgpt4v.problems import Problem
from rsgpt4v.schema import JsonlWriter


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


def write_shard(path: str | Path, lines: list[str]) -> str:
    """Write lines (newlines included) to a shard; return its path as text."""
    with JsonlWriter(path) as writer:
        writer.write_lines(lines)
    return str(path)


def remove_shards(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def as_given(problems: list[dict], resolved: str | Path, given: str | Path) -> list[Problem]:
    """Problems found by workers (which see absolute paths), named as the user gave the paths."""
    resolved, given = str(resolved), str(given)
    out = []
    for problem in problems:
        file = problem["file"]
        if file == resolved or file.startswith(resolved + os.sep):
            file = str(Path(given) / Path(file).relative_to(resolved))
        out.append(Problem(**(problem | {"file": file})))
    return out
