"""The local stack's Argilla: four processes, all listening on loopback only, reported by
``status`` with the versions the cache holds, and the UI served where reviewers open it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import yaml

from tests.support.listeners import listening
from twin_lib.settings import ArgillaSettings, TwinSettings
from twin_lib.stack import ARGILLA_SERVICES, LocalStack


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_argilla_services_run_on_loopback_only_and_show_in_status(
    argilla_stack: TwinSettings,
) -> None:
    argilla = argilla_stack.argilla
    statuses = {s.name: s for s in LocalStack(argilla_stack).status()}
    assert all(statuses[name].running for name in ARGILLA_SERVICES), statuses
    assert statuses["argilla"].version == argilla.server_version
    assert statuses["argilla-worker"].version == argilla.server_version
    assert statuses["opensearch"].version == argilla.opensearch_version
    assert statuses["redis"].version and statuses["redis"].version.startswith("7.")
    assert statuses["argilla"].endpoint == argilla.url
    pids = [statuses[name].pid for name in ARGILLA_SERVICES if statuses[name].pid]
    listeners = listening(pids)
    ports = {port for _, port in listeners}
    expected = {
        argilla.opensearch_port,
        argilla.opensearch_transport_port,
        argilla.redis_port,
        int(argilla.url.rsplit(":", 1)[1]),
    }
    assert expected <= ports, listeners
    assert all(_loopback(ip) for ip, _ in listeners), listeners


def test_the_review_ui_and_status_answer_on_the_server_url(argilla_stack: TwinSettings) -> None:
    page = httpx.get(f"{argilla_stack.argilla.url}/", timeout=10, follow_redirects=True)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    status = httpx.get(f"{argilla_stack.argilla.url}/api/v1/status", timeout=10).json()
    assert status["version"] == argilla_stack.argilla.server_version


def test_the_cluster_runs_the_argilla_version_the_local_stack_pins() -> None:
    manifest = Path(__file__).resolve().parents[2] / "manifests" / "base" / "argilla.yaml"
    documents = yaml.safe_load_all(manifest.read_text())
    images = {
        container["image"]
        for document in documents
        if document and document.get("kind") == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
        if container["image"].startswith("argilla/argilla-server:")
    }
    assert images == {f"argilla/argilla-server:v{ArgillaSettings().server_version}"}
