"""Shared fixtures: a real local stack (MinIO + Weaviate) on free loopback ports.

The stack is started once per test session in a temporary state directory and stopped at
the end; binaries come from the same cache ``twin stack`` uses (built on first use).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from twin_lib.settings import MinioSettings, StackSettings, TwinSettings, WeaviateSettings
from twin_lib.stack import LocalStack
from twin_lib.storage import ObjectStore, VectorStore


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_raft_pair() -> int:
    """A port whose successor is free too (Weaviate's Raft RPC listens on raft + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


def local_settings(state_dir: Path) -> TwinSettings:
    """Settings for a private stack: every port free, state in ``state_dir``."""
    defaults = TwinSettings(_env_file=None)
    return TwinSettings(
        _env_file=None,
        minio=MinioSettings(
            endpoint=f"127.0.0.1:{free_port()}",
            access_key="twin-test",
            secret_key=SecretStr("twin-test-secret"),
            part_size_mb=5,
        ),
        weaviate=WeaviateSettings(
            http_port=free_port(),
            grpc_port=free_port(),
            api_key=SecretStr("twin-test-weaviate-key"),
        ),
        stack=StackSettings(
            state_dir=state_dir,
            cache_dir=defaults.stack.cache_dir,
            minio_console_port=free_port(),
            weaviate_gossip_port=free_port(),
            weaviate_data_port=free_port(),
            weaviate_raft_port=free_raft_pair(),
        ),
    )


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSettings]:
    settings = local_settings(tmp_path_factory.mktemp("stack"))
    stack = LocalStack(settings)
    stack.up()
    try:
        yield settings
    finally:
        stack.down()


@pytest.fixture(scope="session")
def object_store(stack_settings: TwinSettings) -> ObjectStore:
    store = ObjectStore(stack_settings.minio)
    store.ensure_buckets()
    return store


@pytest.fixture
def vector_store(stack_settings: TwinSettings) -> Iterator[VectorStore]:
    with VectorStore(stack_settings.weaviate) as store:
        yield store


@pytest.fixture
def unique_name() -> str:
    """A collection/prefix name no other test uses (Weaviate class names start upper-case)."""
    return f"T{uuid.uuid4().hex[:10]}"
