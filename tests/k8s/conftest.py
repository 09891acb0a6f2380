"""Rendered kustomizations shared by the packaging tests.

The manifests are copied to a temporary directory whose missing secret env files are made
from the committed examples, so the tests need no secrets. The validators (kubeconform,
kube-score) and the schemas are built from Go modules on first use and cached outside the
repository (``<cache>/tools``); later sessions reuse them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_lib.k8s import validate
from twin_lib.settings import TwinSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
OVERLAYS = validate.OVERLAYS
RUNS = validate.RUNS


@pytest.fixture(scope="session")
def settings() -> TwinSettings:
    return load_settings()


@pytest.fixture(scope="session")
def tools_cache(settings: TwinSettings) -> Path:
    return settings.stack.cache_dir


@pytest.fixture(scope="session")
def manifest_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return validate.prepare_tree(MANIFESTS, tmp_path_factory.mktemp("k8s") / "manifests")


@pytest.fixture(scope="session")
def rendered(manifest_tree: Path) -> dict[str, str]:
    """Every kustomization a user applies, rendered once per session."""
    return {target: validate.render(manifest_tree / target) for target in OVERLAYS + RUNS}
