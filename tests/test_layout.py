"""The packages stack without a cycle: each imports only from those below it (docs/architecture.md).

common < fastpath < media < signaling < loadgen < app. Within media, the API objects the main
process holds and the engine in the worker process know each other only through the channel.
Imports under `if TYPE_CHECKING:` are for annotations and are not followed at run time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["common", "fastpath", "media", "signaling", "loadgen", "app"]
# media's halves: neither imports the other
SEPARATE = {("media.api", "media.engine"), ("media.engine", "media.api")}
CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w.]+))", re.M)


def runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (absolute names)."""
    text = path.read_text()
    if path.suffix in (".pyx", ".pxd"):
        return {a or b for a, b in CYTHON_IMPORT.findall(text)}
    tree = ast.parse(text)
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def part_of(module: str) -> str:
    """`media.api.router` -> `media.api`; `signaling.server` -> `signaling`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "media" and len(parts) > 1 else parts[0]


def source_files():
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in (".py", ".pyx", ".pxd") and "migrations" not in path.parts:
                yield package, path


def test_no_package_imports_one_above_it():
    upward = []
    for package, path in source_files():
        for module in runtime_imports(path):
            target = module.split(".")[0]
            if target in LAYERS and LAYERS.index(target) > LAYERS.index(package):
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_two_halves_of_media_meet_only_through_the_channel():
    crossing = []
    for package, path in source_files():
        if package != "media":
            continue
        here = part_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module in runtime_imports(path):
            if (here, part_of(module)) in SEPARATE:
                crossing.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not crossing, "\n".join(crossing)


def test_the_check_sees_an_upward_import(tmp_path):
    """The rule itself: a fast-path module importing the app would be caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nimport app.log\nif TYPE_CHECKING:\n    import signaling\n")
    assert runtime_imports(probe) == {"typing", "app.log"}


def test_the_sdk_imports_nothing_of_the_server():
    """sdk/python is its own distribution (switchyard-client): it installs and runs without the server."""
    inward = [f"{path.relative_to(ROOT)} imports {module}"
              for path in sorted((ROOT / "sdk" / "python").rglob("*.py"))
              for module in runtime_imports(path) if module.split(".")[0] in (*LAYERS, "tests")]
    assert not inward, "\n".join(inward)
