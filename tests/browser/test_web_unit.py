"""The web app's and the client package's Vitest unit tests (the room state reducer, tiles, layout,
retry, quality, data channels, error messages), and the package's API docs being current; run by pytest."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT

WEB = ROOT / "web"
CLIENT = WEB / "packages" / "client"


def npm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = shutil.which("npm")
    if exe is None:
        pytest.fail("npm is not installed: the web app needs Node 20 (see README.md)")
    if not (WEB / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: run `make web` (npm ci in web/)")
    return subprocess.run([exe, *args], cwd=WEB, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CI": "true", "NO_COLOR": "1"})


def test_vitest_unit_tests_pass():
    result = npm("run", "test:app", "--silent")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout, result.stdout[-2000:]


def test_client_package_unit_tests_pass():
    result = npm("run", "test:client", "--silent")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout, result.stdout[-2000:]
    # the package's own suites ran, not the app's
    assert "roomState.test.ts" in result.stdout and "dataChannel.test.ts" in result.stdout, result.stdout[-2000:]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_client_api_docs_match_the_types(tmp_path):
    """docs/api is typedoc's output for the package's types: regenerated here and compared, so a change
    of the API without `npm run docs` fails (typedoc also fails on a warning, e.g. a broken {@link})."""
    out = tmp_path / "api"
    result = npm("exec", "-w", "@switchyard/client", "--", "typedoc", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    committed = CLIENT / "docs" / "api"
    assert _tree(out) == _tree(committed), "run `npm run docs` in web/ and commit web/packages/client/docs/api"
    stale = [name for name in _tree(out) if not filecmp.cmp(out / name, committed / name, shallow=False)]
    assert not stale, f"run `npm run docs` in web/: stale {stale}"
