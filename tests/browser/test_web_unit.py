"""The web app's Vitest unit tests (room state reducer, layout, quality, error messages), run by pytest."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.browser.conftest import ROOT

WEB = ROOT / "web"


def test_vitest_unit_tests_pass():
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the web app needs Node 20 (see README.md)")
    if not (WEB / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: run `make web` (npm ci in web/)")
    result = subprocess.run([npm, "test", "--silent"], cwd=WEB, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CI": "true", "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout, result.stdout[-2000:]
