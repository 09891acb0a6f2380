"""Rendered kustomizations shared by the packaging tests.

The manifests are copied to a temporary directory whose missing secret env files are made
from the committed examples, so the tests need no secrets. The validators (kubeconform,
kube-score), the schemas and the test API server are built from Go modules on first use and
cached outside the repository (``<cache>/tools``); later sessions reuse them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s_client

from tests.support import apiserver
from twin_lib.k8s import tools, validate
from twin_lib.settings import TwinSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
OVERLAYS = validate.OVERLAYS
RUNS = validate.RUNS


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the test API server before the first test when an ``apiserver`` test will run.

    A first build takes many minutes; inside the ``api_server`` fixture it would count
    against the per-test timeout of whichever test happens to start it.
    """
    if not any(item.get_closest_marker("apiserver") for item in session.items):
        return
    cache_dir = load_settings().stack.cache_dir
    if not tools.KUBE_APISERVER_TESTENV.binary(cache_dir).exists():
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("building kube-apiserver-testenv (first use: many minutes)")
        tools.ensure_local_tool(tools.KUBE_APISERVER_TESTENV, cache_dir)


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


@pytest.fixture(scope="session")
def api_server(
    tools_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[apiserver.ApiServer]:
    """One real API server per session, with the KServe and training-operator CRDs served."""
    with apiserver.running(tools_cache, tmp_path_factory.mktemp("apiserver")) as server:
        crd_files = [path for source in tools.CRD_SOURCES for path in tools.module_files(source)]
        apiserver.install_crds(server, crd_files)
        yield server


@pytest.fixture
def api(api_server: apiserver.ApiServer) -> Iterator[k8s_client.ApiClient]:
    with api_server.api_client() as client:
        yield client


@pytest.fixture
def objects(api: k8s_client.ApiClient) -> k8s_client.CustomObjectsApi:
    return k8s_client.CustomObjectsApi(api)
