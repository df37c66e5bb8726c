"""The production image: what its build context holds, and, where a Docker daemon runs, that the
image builds, answers /api/health and the web app, and stops cleanly on SIGTERM."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import time
import tomllib
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, closely enough: a pattern matches the path or one of its parent folders
    (`**/x` at any depth); re-inclusions (`!x`) are not honoured, so this errs towards 'left out'."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:]):
                return True
    return False


def test_the_build_context_keeps_what_the_wheel_and_the_web_app_are_built_from():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", "setup.py", project["project"]["readme"], "web/package.json",
              "web/package-lock.json", "web/index.html", "web/src"]
    for package in project["tool"]["setuptools"]["packages"]:
        folder = ROOT.joinpath(*package.split("."))
        needed += [str(path.relative_to(ROOT)) for path in folder.iterdir()
                   if path.suffix in (".py", ".pyx", ".pxd", ".mako")]
    # the SDK (sdk/python, switchyard-client) is built beside the server: `pip wheel ./sdk/python .`
    sdk = ROOT / "sdk" / "python"
    needed += [str(path.relative_to(ROOT)) for path in [sdk / "pyproject.toml", sdk / "README.md",
                                                        *(sdk / "switchyard_client").iterdir()]
               if path.name != "__pycache__"]
    patterns = [p for p in dockerignore_patterns() if not p.startswith("!")]
    assert ignored("web/node_modules", patterns) and ignored(".venv", patterns)
    for path in needed:
        assert not ignored(path, patterns), f".dockerignore leaves out {path}"


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def docker_daemon():
    if shutil.which("docker") is None:
        pytest.skip("no Docker client: docker is not installed")
    try:
        info = docker("info", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("no Docker daemon: docker info timed out")
    if info.returncode != 0:
        pytest.skip("no Docker daemon: docker info failed")


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.status, response.read()


@pytest.mark.timeout(1800)
def test_the_image_builds_serves_and_stops(docker_daemon):
    tag = f"switchyard-test:{uuid.uuid4().hex[:12]}"
    build = docker("build", "--tag", tag, str(ROOT), timeout=1700, check=False)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    container = None
    try:
        container = docker("run", "--detach", "--publish", "127.0.0.1::3000",
                           "--env", "SWITCHYARD_WORKERS=1", tag).stdout.strip()
        host_port = docker("port", container, "3000/tcp").stdout.split()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{host_port}"
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status, _ = get(f"{base}/api/health")
            except OSError:
                time.sleep(0.5)
        logs = lambda: docker("logs", container, check=False).stderr[-4000:]  # noqa: E731
        assert status == 200, logs()
        status, body = get(f"{base}/")
        assert status == 200 and b"not built in this install" not in body, "the web app is not in the image"
        assert docker("exec", container, "python", "-c", "import pytest", check=False).returncode != 0, \
            "the image holds the test extra"
        docker("stop", "--time", "20", container, timeout=40)
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
        assert exit_code == "0", logs()
    finally:
        if container:
            docker("rm", "--force", container, check=False)
        docker("rmi", "--force", tag, check=False)
