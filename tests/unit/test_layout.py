"""Data flows one way: CLI / components -> steps -> pure stages -> adapters -> settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import twin_lib

PACKAGE = Path(twin_lib.__file__).parent
STAGES = ("crawl", "quality", "features", "datasets", "generation", "training", "registry")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_twin_lib_never_imports_pipelines_or_components():
    offending = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imports(path) if name.split(".")[0] in ("pipelines", "components")
        )
        for path in _modules(PACKAGE)
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_settings_import_no_stage():
    imported = {n for n in _imports(PACKAGE / "settings.py") if n.startswith("twin_lib")}
    assert imported <= {"twin_lib.domain"}


@pytest.mark.parametrize("stage", STAGES)
def test_stages_import_no_step_and_no_cli(stage):
    offending = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imports(path) if name.startswith(("twin_lib.steps", "twin_lib.cli"))
        )
        for path in _modules(PACKAGE / stage)
    }
    assert {path: names for path, names in offending.items() if names} == {}
