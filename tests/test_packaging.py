"""The distributions a user installs: what the wheel and the sdist carry, built by setuptools from
a copy of the repository (so the build's own files never land in the checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_canvas_reports"
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", ".azurite", ".*cache", ".hypothesis", "*.egg-info", "build", "dist", "__pycache__"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    """The names in the wheel and in the sdist (without the sdist's top directory)."""
    root = tmp_path_factory.mktemp("packaging")
    source, out = root / "source", root / "out"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    out.mkdir()
    for hook in ("build_wheel", "build_sdist"):  # one process each, as a build frontend does
        build = f"import sys; from setuptools import build_meta; build_meta.{hook}(sys.argv[1])"
        done = subprocess.run(
            [sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
    [wheel_path], [sdist_path] = out.glob("*.whl"), out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel_path) as wheel:
        wheel_names = wheel.namelist()
    with tarfile.open(sdist_path) as sdist:
        sdist_names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    return wheel_names, sdist_names


def test_the_wheel_ships_the_package_its_types_and_licence(built: tuple[list[str], list[str]]):
    wheel, _ = built
    assert f"{PACKAGE}/py.typed" in wheel
    assert f"{PACKAGE}/get_provider_info.py" in wheel
    assert f"{PACKAGE}/simulator/__main__.py" in wheel  # the simulator users run offline
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel)
    assert any(name.endswith(".dist-info/entry_points.txt") for name in wheel)
    # Nothing but the package and its metadata: no tests, benchmarks, scripts or example DAGs.
    top = {name.split("/", 1)[0] for name in wheel}
    assert [name for name in top if name != PACKAGE and not name.endswith(".dist-info")] == []
    assert not [name for name in wheel if name.endswith((".pyc", ".pyo"))]


def test_the_sdist_carries_the_example_dags_and_no_stray_tests(built: tuple[list[str], list[str]]):
    _, sdist = built
    assert {"pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"} <= set(sdist)
    assert f"{PACKAGE}/py.typed" in sdist
    examples = sorted(path.name for path in (REPO / "example_dags").glob("*.py"))
    assert examples
    assert sorted(name.split("/", 1)[1] for name in sdist if name.startswith("example_dags/")) == examples
    assert not [name for name in sdist if name.startswith(("tests/", "benchmarks/", "scripts/"))]
