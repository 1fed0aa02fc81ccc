"""README.md's Quick start, "Use it on your data" and "Fine-tune in three commands" run as written.

A newcomer copies those commands, in order, into a fresh shell. This test does the same: it
collects the ```bash blocks of those sections (other fences such as ```console or ```text are
illustrations and are not run), and runs them in one `bash` script, in a copy of the repository,
with a bare environment (no activated virtual environment, a fresh HOME, nothing downloaded).
The copy's .venv is a symlink to the installed one, so `make demo` installs nothing. Only
`make test` is left out: the suite cannot run itself.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
SECTIONS = ("## Quick start", "## Use it on your data", "## Fine-tune in three commands")
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "demo-output", "runs", "*.egg-info", "build", ".pytest_cache",
    ".ruff_cache", ".hypothesis", "__pycache__", "tiny-llava-model", "merged-tiny-llava",
)  # fmt: skip
MAKE_TEST = re.compile(r"^\s*make test\s*(#.*)?$")


def readme_bash_blocks(text: str) -> list[str]:
    """The ```bash blocks of SECTIONS, in README order (headings inside fences do not count)."""
    blocks, found, section, fence, body = [], set(), None, None, []
    for line in text.splitlines():
        if fence is None and line.startswith("## "):
            section = line.strip() if line.strip() in SECTIONS else None
            found.add(section)
        elif fence is None and line.startswith("```"):
            fence, body = line[3:].strip(), []
        elif fence is not None and line.strip() == "```":
            if section and fence == "bash":
                blocks.append("\n".join(body))
            fence = None
        elif fence is not None:
            body.append(line)
    missing = set(SECTIONS) - found
    assert not missing, f"README.md has no section {sorted(missing)}"
    return blocks


def output_paths(script: str) -> list[str]:
    """The PATH of every `-o PATH` / `--output PATH` in the commands, unless it uses a variable."""
    paths = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        pairs = itertools.pairwise(words)
        paths += [b for a, b in pairs if a in ("-o", "--output") and "$" not in b]
    return paths


def bare_path() -> str:
    """The caller's PATH without any virtual environment's bin directory."""
    venv_bins = {REPO / ".venv", Path(sys.prefix) / "bin"}
    if os.environ.get("VIRTUAL_ENV"):
        venv_bins.add(Path(os.environ["VIRTUAL_ENV"]) / "bin")
    keep = []
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = Path(entry).absolute()
        if not any(path == v or v in path.parents for v in venv_bins):
            keep.append(entry)
    return os.pathsep.join(keep)


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    lock = REPO / "requirements-lock.txt"
    assert lock.is_file(), "requirements-lock.txt is missing: run `make lock`"
    lines = "\n".join(readme_bash_blocks((REPO / "README.md").read_text())).splitlines()
    commands = "\n".join(line for line in lines if not MAKE_TEST.match(line))
    assert re.search(r"^\s*make demo\b", commands, re.M), "no `make demo` in README's commands"

    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, symlinks=True, ignore=IGNORE)  # copy2: mtimes kept
    (copy / ".venv").symlink_to(REPO / ".venv")
    env = {
        "HOME": str(tmp_path / "home"),
        "PATH": bare_path(),
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TERM": "dumb",
    }
    (tmp_path / "home").mkdir()
    # `make demo` must find the install up to date: never reinstall into the shared .venv.
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=copy, env=env).returncode:
        pytest.fail(
            ".venv/.installed is older than pyproject.toml or requirements-lock.txt: run "
            "`make install` first (this test will not reinstall into the shared .venv)"
        )
    script = tmp_path / "readme.sh"
    script.write_text(f"set -euxo pipefail\ncd {shlex.quote(str(copy))}\n{commands}\n")
    done = subprocess.run(
        ["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"README commands failed (exit {done.returncode}); output tail:\n"
        f"{done.stdout[-4000:]}\n--- script ---\n{script.read_text()}"
    )
    expected = ["demo-output/llava.json", *output_paths(commands)]
    missing = [path for path in expected if not (copy / path).exists()]
    assert not missing, f"README commands ran but did not write {missing}"
