"""Shard manifests: what a ``--shard I/N`` run wrote, so ``merge-shards`` can prove every shard
is there exactly once.

A finished ``--shard I/N`` run writes ``OUT.shard.json`` beside its output ``OUT`` (with
:func:`write_manifest`, after the output is in place): the shard index and count, the command,
a digest of each input file, and the output's line count and digest. ``merge-shards`` reads the
manifests of its parts (:func:`check_manifests`) and refuses, naming what is wrong, a missing or
repeated shard, parts of runs with another N, other inputs or another records file, and a part
that changed after its manifest was written (a stale manifest beside a later output). A run that
stops early (a spent budget) writes no manifest: its output is not the whole shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.atomic import atomic_text
from rsgpt4v.errors import InputError

SUFFIX = ".shard.json"
KIND = "rsgpt4v shard"
VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ShardSet:
    """The parts of one run as their manifests describe them: N, and each part's index."""

    count: int
    indices: list[int]


def manifest_path(output: str | Path) -> Path:
    """``part0.jsonl`` → ``part0.jsonl.shard.json``."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def file_digest(path: str | Path) -> tuple[int, str]:
    """(newline count, sha256 hex) of a file, read in chunks."""
    digest, lines = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return lines, digest.hexdigest()


def write_manifest(
    output: str | Path,
    shard: tuple[int, int],
    inputs: Mapping[str, str | Path],
    command: str = "instruct",
) -> Path:
    """Write the manifest of a finished shard ``(I, N)`` whose output is ``output``.

    ``inputs`` names each input file by its role (``{"records": path}``); ``merge-shards``
    compares their digests across parts and with its ``--records``. Call it only once the run
    wrote its whole shard: a manifest says that nothing of the shard is missing.
    """
    index, count = shard
    lines, digest = file_digest(output)
    manifest = {
        "kind": KIND,
        "version": VERSION,
        "command": command,
        "shard": index,
        "of": count,
        "inputs": {role: file_digest(path)[1] for role, path in sorted(inputs.items())},
        "lines": lines,
        "sha256": digest,
    }
    path = manifest_path(output)
    with atomic_text(path) as handle:  # never through a file planted at a fixed name
        handle.write(json.dumps(manifest, indent=1) + "\n")
    return path


def drop_manifest(output: str | Path) -> None:
    """Remove the manifest beside ``output``: a run that stopped before its whole shard was
    written must not leave an earlier run's manifest vouching for it."""
    manifest_path(output).unlink(missing_ok=True)


def read_manifest(part: str | Path) -> dict | None:
    """The manifest beside ``part``, checked for shape; None when the part has none."""
    path = manifest_path(part)
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"shard manifest is unreadable ({error})", file=path) from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise InputError(f'not a shard manifest (no "kind": "{KIND}")', file=path)
    index, count = manifest.get("shard"), manifest.get("of")
    numbers = (index, count, manifest.get("lines"))
    if not all(type(n) is int for n in numbers) or not 0 <= index < count:
        raise InputError("shard manifest has no valid shard, of and lines", file=path)
    inputs = manifest.get("inputs")
    digests = isinstance(inputs, dict) and all(isinstance(v, str) for v in inputs.values())
    if not isinstance(manifest.get("sha256"), str) or not digests:
        raise InputError("shard manifest has no sha256 and inputs", file=path)
    return manifest


def check_manifests(parts: Sequence[Path], records: str | Path | None = None) -> ShardSet | None:
    """The parts' shard set, proven complete and unrepeated; None when no part has a manifest.

    Raises ``InputError`` naming the first problem: a part without a manifest among parts with
    one, a part that changed since its manifest, parts of different runs (N, command, inputs),
    a ``records`` file other than the one the shards were made from, a repeated shard, and
    every missing shard.
    """
    manifests = [read_manifest(part) for part in parts]
    if all(manifest is None for manifest in manifests):
        return None
    first = next(i for i, manifest in enumerate(manifests) if manifest is not None)
    reference: dict = manifests[first]  # type: ignore[assignment]
    named = parts[first]
    seen: dict[int, Path] = {}
    for part, manifest in zip(parts, manifests, strict=True):
        if manifest is None:
            raise InputError(
                f"has no shard manifest ({manifest_path(part).name}) while {named} has one: "
                "merge the parts of one run, all written by this version",
                file=part,
            )
        lines, digest = file_digest(part)
        if (lines, digest) != (manifest["lines"], manifest["sha256"]):
            raise InputError(
                f"does not match its manifest {manifest_path(part).name} ({manifest['lines']} "
                f"lines, now {lines}): the file changed after its --shard run wrote it",
                file=part,
            )
        if problem := _other_run(manifest, reference, named):
            raise InputError(f"{problem}: parts of different runs", file=part)
        index = manifest["shard"]
        if index in seen:
            raise InputError(
                f"is shard {index} of {manifest['of']}, given twice (also as {seen[index]})",
                file=part,
            )
        seen[index] = part
    count = reference["of"]
    missing = [index for index in range(count) if index not in seen]
    if missing:
        listed = ", ".join(map(str, missing))
        have = ", ".join(map(str, sorted(seen)))
        raise InputError(
            f"shard{'s' if len(missing) > 1 else ''} {listed} of {count} "
            f"{'are' if len(missing) > 1 else 'is'} missing "
            f"(given: shard{'s' if len(seen) > 1 else ''} {have})"
        )
    wanted = reference["inputs"].get("records")
    if records is not None and wanted is not None and file_digest(records)[1] != wanted:
        raise InputError(
            f"is not the records file the shards were made from (their manifests name the "
            f"sha256 {wanted[:12]}…)",
            file=records,
        )
    return ShardSet(count, [manifest["shard"] for manifest in manifests])  # type: ignore[index]


def _other_run(manifest: dict, reference: dict, named: Path) -> str | None:
    """How a manifest's run differs from the reference part's (N, command, inputs), if it does."""
    if manifest["of"] != reference["of"]:
        return (
            f"is shard {manifest['shard']} of {manifest['of']}, but {named} is shard "
            f"{reference['shard']} of {reference['of']}"
        )
    if manifest.get("command") != reference.get("command"):
        return f"was written by {manifest.get('command')}, {named} by {reference.get('command')}"
    if manifest["inputs"] != reference["inputs"]:
        changed = sorted(set(manifest["inputs"].items()) ^ set(reference["inputs"].items()))
        return f"was made from another {changed[0][0]} file than {named}"
    return None
