"""The files a new user and CI rely on: Dockerfile, Makefile, .ci/run, README, and a clean ruff."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dockerfile_lines() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def test_dockerfile_copies_paths_that_exist():
    copies = [line.split()[1:-1] for line in dockerfile_lines()
              if line.startswith("COPY") and "--from" not in line]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_entrypoint_is_the_console_script_and_serve():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "switchyard" in project["project"]["scripts"]
    lines = dockerfile_lines()
    assert 'ENTRYPOINT ["switchyard"]' in lines
    assert 'CMD ["serve"]' in lines
    assert any(line.startswith("USER ") and "root" not in line for line in lines)


def test_dockerfile_exposes_the_default_ports_and_checks_health():
    from app.config import Settings

    defaults = Settings()
    expose = next(line for line in dockerfile_lines() if line.startswith("EXPOSE"))
    assert str(defaults.port) in expose.split() and str(defaults.signaling_port) in expose.split()
    low, high = re.search(r"(\d+)-(\d+)/udp", expose).groups()
    assert int(low) == defaults.rtc_port_base < int(high)
    health = next(line for line in dockerfile_lines() if line.startswith("HEALTHCHECK"))
    assert f":{defaults.port}/api/health" in health


def test_dockerfile_env_names_are_settings_the_cli_reads():
    cli = (ROOT / "app" / "cli.py").read_text() + (ROOT / "app" / "server.py").read_text()
    for name in re.findall(r"SWITCHYARD_([A-Z_]+)=", (ROOT / "Dockerfile").read_text()):
        assert f'"{name}"' in cli or f"SWITCHYARD_{name}" in cli, name


def test_ci_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in text and "make test" in text


def test_ci_checks_a_fresh_install_before_the_test_extras():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("make check-fresh-install") < lines.index("make test")
    assert (ROOT / "tests" / "fresh_install_check.sh").is_file()


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("\n## ", 2)
    assert "make run" in head[0] + head[1] and "make test" in head[0] + head[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is part of the documented setup")
def test_makefile_has_the_documented_targets():
    out = subprocess.run(["make", "-pn", "-f", str(ROOT / "Makefile")], capture_output=True,
                         text=True, cwd=ROOT).stdout
    for target in ("run", "test", "bench", "lint", "clean"):
        assert re.search(rf"^{target}:", out, re.M), target


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "common", "fastpath", "media", "signaling",
                             "app", "loadgen", "tests", "bench", "setup.py", "sdk/python"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
