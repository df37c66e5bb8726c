"""The SDK installs on its own: `switchyard-client`'s wheel, in a clean virtualenv, without an index.

Built from sdk/python (a copy, so no build artefact is left in the checkout) and installed with its
dependencies from the wheel cache tests/fresh_install_check.sh keeps (SWITCHYARD_WHEELHOUSE,
default ~/.cache/switchyard/wheels; filled from the package index once when a dependency is missing).
The virtualenv then imports the SDK and none of the server's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
SDK = Path(__file__).resolve().parent.parent / "sdk" / "python"
SERVER_PACKAGES = ("app", "signaling", "media", "fastpath", "loadgen", "common", "pytest")


def wheelhouse() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "switchyard" / "wheels"
    path = Path(os.environ.get("SWITCHYARD_WHEELHOUSE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdk_wheel_installs_and_imports_in_a_clean_venv_without_the_server(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet")
    # this interpreter's setuptools builds it: no build environment to fetch
    check(run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp_path / "sdk", source,
              cwd=tmp_path))
    (wheel,) = (tmp_path / "sdk").glob("switchyard_client-*.whl")

    check(run(sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv", cwd=tmp_path))
    python = tmp_path / "venv" / "bin" / "python"
    install = (*pip, "--python", python, "install", "--no-index", "--find-links", wheelhouse(), wheel)
    if run(*install, cwd=tmp_path).returncode != 0:
        dependencies = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]["dependencies"]
        check(run(*pip, "wheel", "--find-links", wheelhouse(), "--wheel-dir", wheelhouse(), *dependencies,
                  cwd=tmp_path))
        check(run(*install, cwd=tmp_path))

    probe = (
        "import importlib.util, pathlib, sys\n"
        "import switchyard_client\n"
        "from switchyard_client import Room, SwitchyardClient\n"
        "assert pathlib.Path(switchyard_client.__file__).with_name('py.typed').is_file()\n"
        f"present = [m for m in {SERVER_PACKAGES!r} if importlib.util.find_spec(m)]\n"
        "assert not present, present\n"
        "print(switchyard_client.__version__, Room.join.__name__, SwitchyardClient.__name__)\n"
    )
    result = run(python, "-I", "-c", probe, cwd=tmp_path)
    check(result)
    assert result.stdout.split() == ["0.1.0", "join", "SwitchyardClient"]
