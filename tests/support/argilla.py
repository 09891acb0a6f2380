"""A private Argilla (server, worker, OpenSearch, Redis) beside a private stack, and the
reviewers that annotate through its REST API as the UI would."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from pydantic import SecretStr

from tests.support.isolated import free_port
from twin_lib.settings import TwinSettings
from twin_lib.stack import ARGILLA_SERVICES, LocalStack

OWNER_KEY = "twin-test-argilla-owner-key"
# The OpenSearch runner refuses HTTP ports above this range.
OPENSEARCH_PORTS = range(9201, 9300)


def free_port_in(ports: range) -> int:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


def with_private_argilla(settings: TwinSettings) -> TwinSettings:
    """``settings`` with Argilla's four services on free loopback ports."""
    argilla = settings.argilla.model_copy(
        update={
            "url": f"http://127.0.0.1:{free_port()}",
            "api_key": SecretStr(OWNER_KEY),
            "opensearch_port": free_port_in(OPENSEARCH_PORTS),
            "opensearch_transport_port": free_port(),
            "redis_port": free_port(),
            "opensearch_heap_mb": 512,
        }
    )
    return settings.model_copy(update={"argilla": argilla})


@contextmanager
def private_argilla(settings: TwinSettings) -> Iterator[TwinSettings]:
    """Argilla started in ``settings``' state dir, stopped (by PID) on exit."""
    settings = with_private_argilla(settings)
    stack = LocalStack(settings)
    try:
        stack.up(ARGILLA_SERVICES)
        yield settings
    finally:
        stack.down(ARGILLA_SERVICES)


def api_key_of(url: str, username: str, password: str) -> str:
    """An annotator's API key, obtained the way the UI signs in."""
    token = httpx.post(
        f"{url}/api/v1/token", data={"username": username, "password": password}, timeout=10
    )
    token.raise_for_status()
    me = httpx.get(
        f"{url}/api/v1/me",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=10,
    )
    me.raise_for_status()
    return str(me.json()["api_key"])


def add_reviewer(settings: TwinSettings, username: str) -> str:
    """An annotator of the review workspace, created by the owner; returns its API key."""
    import argilla as rg

    argilla = settings.argilla
    client = rg.Argilla(api_url=argilla.url, api_key=argilla.api_key.get_secret_value())
    password = f"{username}-password"
    user = client.users(username=username)
    if user is None:
        user = rg.User(username=username, password=password, role="annotator", client=client)
        user.create()
        workspace = client.workspaces(argilla.workspace)
        assert workspace is not None, f"no workspace {argilla.workspace}"
        user.add_to_workspace(workspace)
    return api_key_of(argilla.url, username, password)


def submit(
    url: str, api_key: str, record_id: str, values: dict[str, object], status: str = "submitted"
) -> None:
    """One reviewer's answers to one record, sent as the annotation UI sends them."""
    response = httpx.post(
        f"{url}/api/v1/records/{record_id}/responses",
        headers={"X-Argilla-Api-Key": api_key},
        json={"values": {name: {"value": v} for name, v in values.items()}, "status": status},
        timeout=30,
    )
    response.raise_for_status()
