"""Shared fixtures: a real local stack (MinIO + Weaviate) on free loopback ports.

The stack is started once per test session in a temporary state directory and stopped at
the end; binaries come from the same cache ``twin stack`` uses (built on first use).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.isolated import isolated_settings
from twin_lib.settings import TwinSettings
from twin_lib.stack import LocalStack
from twin_lib.storage import ObjectStore, VectorStore


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSettings]:
    settings = isolated_settings(tmp_path_factory.mktemp("stack"))
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
