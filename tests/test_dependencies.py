"""Every third-party module the product imports is one of its declared dependencies (issue 10).

The product's packages are those pyproject.toml ships (`[tool.setuptools] packages`); their imports
(ast on .py files, the Python-level `import` lines of .pyx files) must map, through the installed
distributions, to a `Requires-Dist` of the installed `switchyard` without an `extra ==` marker.
An import that the code guards with `except ImportError` somewhere (matplotlib for `--plot`) may
come from an extra instead, but never from the test extra. Needs `pip install -e '.[test]'`
after a change of pyproject.toml, as `make test` does.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
TEST_EXTRA = "test"


@dataclass(frozen=True)
class Import:
    module: str  # top-level name
    where: str  # path:line
    optional: bool  # inside a `try` that catches ImportError


def shipped_packages() -> list[str]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools.get("packages")
    assert isinstance(packages, list) and packages, "[tool.setuptools] packages must list the packages"
    return packages


def project_top_levels() -> set[str]:
    return {name.split(".")[0] for name in shipped_packages()}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def catches_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {kind.id for kind in kinds if isinstance(kind, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def imports_of_tree(node: ast.AST, rel: str, optional: bool = False):
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield Import(alias.name.split(".")[0], f"{rel}:{node.lineno}", optional)
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0 and node.module:
            yield Import(node.module.split(".")[0], f"{rel}:{node.lineno}", optional)
    if isinstance(node, ast.If) and is_type_checking(node.test):
        children = node.orelse  # annotations only: never imported at run time
    elif isinstance(node, ast.Try | ast.TryStar) and catches_import_error(node):
        for child in node.body:
            yield from imports_of_tree(child, rel, optional=True)
        children = [*node.handlers, *node.orelse, *node.finalbody]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from imports_of_tree(child, rel, optional)


# Python-level imports of a .pyx file (a `cimport` is resolved at build time and is not matched).
PYX_IMPORT = re.compile(r"^\s*import\s+([A-Za-z_][\w.]*(?:\s+as\s+\w+)?(?:\s*,\s*[A-Za-z_][\w.]*(?:\s+as\s+\w+)?)*)\s*(?:#.*)?$")
PYX_FROM = re.compile(r"^\s*from\s+([A-Za-z_][\w.]*)\s+import\b")


def imports_of_pyx(text: str, rel: str):
    for number, line in enumerate(text.splitlines(), 1):
        if match := PYX_FROM.match(line):
            yield Import(match.group(1).split(".")[0], f"{rel}:{number}", False)
        elif match := PYX_IMPORT.match(line):
            for part in match.group(1).split(","):
                yield Import(part.split()[0].split(".")[0], f"{rel}:{number}", False)


def package_dir(package: str) -> Path:
    return ROOT.joinpath(*package.split("."))


@cache
def third_party_imports() -> tuple[Import, ...]:
    """Top-level names that the shipped packages import, less the standard library and the project."""
    own = project_top_levels()
    found = []
    for package in shipped_packages():
        for path in sorted(package_dir(package).iterdir()):
            rel = str(path.relative_to(ROOT))
            if path.suffix == ".py":
                found += imports_of_tree(ast.parse(path.read_text(), rel), rel)
            elif path.suffix == ".pyx":
                found += imports_of_pyx(path.read_text(), rel)
    return tuple(i for i in found if i.module not in sys.stdlib_module_names and i.module not in own)


def optional_modules() -> set[str]:
    return {i.module for i in third_party_imports() if i.optional}


def declared() -> list[Requirement]:
    return [Requirement(line) for line in metadata.requires("switchyard") or []]


def extra_of(req: Requirement) -> str | None:
    """The extra a requirement belongs to, None for an unconditional (runtime) one."""
    if req.marker is None:
        return None
    match = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", str(req.marker))
    return match.group(1) if match else None


def runtime_requirements() -> list[Requirement]:
    return [req for req in declared() if extra_of(req) is None]


def extra_requirements(extra: str) -> list[Requirement]:
    return [req for req in declared() if extra_of(req) == extra]


@cache
def module_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(module: str) -> list[str]:
    return sorted({canonicalize_name(d) for d in module_distributions().get(module, [])})


def installed_closure(requirements: list[Requirement]) -> dict[str, str]:
    """Each installed distribution these requirements bring, transitively -> the requirement it comes through."""
    brought: dict[str, str] = {}
    visited = set()
    stack = [(req, req.name) for req in requirements]
    while stack:
        req, via = stack.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in visited:
            continue
        visited.add((name, frozenset(req.extras)))
        brought.setdefault(name, via)
        try:
            subs = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in subs:
            sub = Requirement(line)
            extras = {"", *req.extras}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                stack.append((sub, via))
    return brought


def test_the_installed_metadata_is_this_checkouts():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    written = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    installed = {canonicalize_name(req.name) for req in runtime_requirements()}
    assert written == installed, "switchyard is installed from another pyproject.toml: pip install -e '.[test]'"


def test_the_shipped_packages_are_found_and_import_third_party_code():
    modules = {i.module for i in third_party_imports()}
    # a walk that finds nothing would make the tests below pass vacuously
    assert {"aiohttp", "numpy"} <= modules, sorted(modules)


def test_every_package_directory_is_shipped():
    shipped = set(shipped_packages())
    for top in project_top_levels():
        for init in package_dir(top).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert name in shipped, f"{name} has an __init__.py but is not in [tool.setuptools] packages"


def test_every_runtime_import_is_a_declared_dependency():
    runtime = {canonicalize_name(req.name) for req in runtime_requirements()}
    extras = {canonicalize_name(req.name) for req in declared()
              if extra_of(req) not in (None, TEST_EXTRA)}
    optional = optional_modules()
    missing = []
    for imp in third_party_imports():
        dists = distributions_of(imp.module)
        if imp.module in optional:
            if not set(dists or [canonicalize_name(imp.module)]) & (runtime | extras):
                missing.append(f"{imp.where}: optional import {imp.module} is in no extra but the test one")
        elif not dists:
            missing.append(f"{imp.where}: {imp.module} is provided by no installed distribution")
        elif not set(dists) & runtime:
            missing.append(f"{imp.where}: {imp.module} ({', '.join(dists)}) is not in [project] dependencies")
    assert not missing, "\n".join(missing)


def test_no_runtime_module_imports_a_test_only_distribution():
    runtime = installed_closure(runtime_requirements())
    test_only = {name: via for name, via in installed_closure(extra_requirements(TEST_EXTRA)).items()
                 if name not in runtime}
    assert "pytest" in test_only, "the test extra is not installed: pip install -e '.[test]'"
    offenders = []
    for imp in third_party_imports():
        if imp.module == "tests":
            offenders.append(f"{imp.where}: imports the test suite")
        for dist in distributions_of(imp.module):
            if dist in test_only:
                offenders.append(f"{imp.where}: {imp.module} comes only with the test extra "
                                 f"(through {test_only[dist]})")
    assert not offenders, "\n".join(offenders)
