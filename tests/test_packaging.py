"""The package installs as users get it: from a wheel, in a fresh virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).parents[1]


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools reuses it: stale files hide gaps
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        out,
        REPO,
    )
    (built,) = out.glob("rsgpt4v-*.whl")
    return built


@pytest.mark.slow
def test_wheel_maps_the_top_level_folders_into_one_namespace(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "rsgpt4v/cli.py",
        "rsgpt4v/converters/dota.py",
        "rsgpt4v/prompts/rules/counting.yaml",
        "rsgpt4v/prompts/categories.yaml",
        "rsgpt4v/finetune/__init__.py",
    ):
        assert expected in names
    assert not any(n.startswith(("converters/", "prompts/", "tests/", "finetune/")) for n in names)


@pytest.mark.slow
def test_wheel_ships_every_module_and_data_file(wheel: Path) -> None:
    """A subpackage missing from pyproject's list breaks the installed command, not the checkout."""
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {"rsgpt4v": "rsgpt4v", "converters": "rsgpt4v/converters"}
    shipped |= {"prompts": "rsgpt4v/prompts", "finetune": "rsgpt4v/finetune"}
    for folder, package in shipped.items():
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".yaml", ".j2", ".json", ".js", ".css"} and path.is_file():
                if "__pycache__" in path.parts:
                    continue
                name = f"{package}/{path.relative_to(REPO / folder).as_posix()}"
                assert name in names, f"{name} is not in the wheel (pyproject packages/data)"


@pytest.mark.slow
def test_wheel_runs_in_a_fresh_virtual_environment(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / "bin"
    _run(bin_dir / "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    # Dependencies come from this environment's site-packages as a plain path entry: its .pth
    # files (the editable install of the checkout) are not processed, so only the wheel's
    # copy of rsgpt4v can be imported.
    fresh_site = Path(
        _run(
            bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).strip()
    )
    (fresh_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    assert "Usage" in _run(bin_dir / "rsgpt4v", "--help", cwd=tmp_path)
    assert "dota-v2.0" in _run(bin_dir / "rsgpt4v", "datasets", cwd=tmp_path)
    where = _run(
        bin_dir / "python",
        "-c",
        "import rsgpt4v.converters.dota as m; print(m.__file__)",
        cwd=tmp_path,
    )
    assert where.strip().startswith(str(fresh_site))
    out = _run(bin_dir / "rsgpt4v", "demo", "-o", tmp_path / "demo", cwd=tmp_path)
    assert "LLaVA JSON" in out and (tmp_path / "demo/llava.json").is_file()


def _locked() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    locked = {}
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[canonicalize_name(name)] = version
    return locked


def _venv_distributions() -> dict[str, str]:
    """Name → version of what the venv's site-packages hold (not copies vendored elsewhere on
    sys.path: setuptools puts its _vendor folder there), the project itself left out."""
    import sysconfig
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    folders = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    found = {
        canonicalize_name(d.metadata["Name"]): d.version.split("+")[0]
        for d in distributions(path=folders)
    }
    found.pop("rsgpt4v", None)
    return found


def _in_make_venv() -> bool:
    return Path(sys.prefix).resolve() == (REPO / ".venv").resolve()


def test_the_environment_is_the_lock() -> None:
    """make install/test install exactly requirements-lock.txt: the venv holds every locked
    package at its locked version and nothing else, and the lock pins the installers and the
    build backend too. (Elsewhere, e.g. a user's own environment, only the lock's form is
    checked.)"""
    locked = _locked()
    assert {"pip", "setuptools", "wheel", "torch"} <= locked.keys()
    if not _in_make_venv():
        pytest.skip("not the .venv that make builds from the lock")
    installed = _venv_distributions()
    assert sorted(installed.keys() - locked.keys()) == [], "installed but not in the lock"
    assert sorted(locked.keys() - installed.keys()) == [], "locked but not installed"
    differ = {n: (installed[n], v) for n, v in locked.items() if installed[n] != v}
    assert not differ, f"installed (left) is not the lock (right): {differ}"


def test_the_lock_satisfies_every_requirement_of_the_installed_extras() -> None:
    """The project is installed --no-deps: a requirement pyproject.toml gains must come with a
    lock entry that satisfies it, or this fails (on Linux, for the extras make installs)."""
    import re

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    extras = re.search(r"^EXTRAS := (.+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras.split(","):
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) != "rsgpt4v":  # an extra naming others
                wanted.append(requirement)
    locked = _locked()
    missing = []
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{requirement} (lock: {version})")
    assert missing == []
