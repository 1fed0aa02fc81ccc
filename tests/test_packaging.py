"""The package installs as users get it: from a wheel, in a fresh virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

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


def test_the_environment_is_the_lock() -> None:
    """make install/test install requirements-lock.txt: every locked package present has its
    locked version, and the lock pins the installers and the build backend too."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    locked = {}
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[canonicalize_name(name)] = version
    assert {"pip", "setuptools", "wheel", "torch"} <= locked.keys()
    installed: dict[str, str] = {}
    for dist in distributions():  # the first on sys.path is the one imported; later ones are
        # copies vendored by other packages (setuptools puts its _vendor folder on sys.path)
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist.version)
    differ = {
        name: (installed[name], version)
        for name, version in locked.items()
        if name in installed and installed[name].split("+")[0] != version
    }
    assert not differ, f"installed (left) is not the lock (right): {differ}"
