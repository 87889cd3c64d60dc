"""The installed package imports, and everything it imports at run time is declared."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import rag

REPO = Path(__file__).resolve().parent.parent
MODULES = sorted(m.name for m in pkgutil.walk_packages(rag.__path__, "rag.") if m.name != "rag.__main__")
OPTIONAL = {"matplotlib"}  # the `charts` extra; its absence is reported, not a crash


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(name)


def _third_party_imports() -> set[str]:
    found = set()
    for path in (REPO / "rag").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("rag", "__future__")}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").split("[")[0]


def test_every_run_time_import_is_a_declared_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {
        _normalise(spec.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip())
        for spec in project["dependencies"]
    }
    providers = metadata.packages_distributions()
    missing = []
    for module in sorted(_third_party_imports() - OPTIONAL):
        dists = {_normalise(d) for d in providers.get(module, [])}
        if not dists & declared:
            missing.append(f"{module} (from {', '.join(sorted(dists)) or 'no installed distribution'})")
    assert not missing, f"imported by rag but not in pyproject's dependencies: {missing}"
