"""Shared fixtures: a real local stack (MinIO + Weaviate) on free loopback ports, and a
served twin on it.

The stack is started once per test session in a temporary state directory and stopped at
the end; binaries come from the same cache ``twin stack`` uses (built on first use). The
served twin (corpus loaded, dataset built, version approved) is built once for every test
folder that needs one (serving, evaluation, promotion, deployment).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.argilla import private_argilla
from tests.support.isolated import isolated_settings, private_stack
from tests.support.serving_data import ServedSetup, build_served_setup
from twin_lib.settings import BaseModelRecipe, TwinSettings
from twin_lib.storage import ObjectStore, VectorStore


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSettings]:
    with private_stack(tmp_path_factory.mktemp("stack")) as settings:
        yield settings


@pytest.fixture(scope="session")
def argilla_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSettings]:
    """A real Argilla 2.8 (server, worker, OpenSearch, Redis) on free loopback ports, started
    once per session; ``argilla.url`` and ``argilla.api_key`` (the owner's) point at it."""
    with private_argilla(isolated_settings(tmp_path_factory.mktemp("argilla"))) as settings:
        yield settings


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


@pytest.fixture(scope="session")
def serving_base_model() -> Path:
    """The tiny offline base model (tokenizer and chat template included), built once per
    machine in the cache the platform itself uses."""
    from twin_lib.training.base_model import ensure_base_model

    return ensure_base_model(BaseModelRecipe.tiny(), TwinSettings(_env_file=None).stack.cache_dir)


@pytest.fixture(scope="session")
def served_setup(
    stack_settings: TwinSettings,
    serving_base_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServedSetup:
    """An approved version of a twin of the labelled corpus's author, resolved for serving:
    ``.settings`` (serving.model_name/version set), ``.model``, ``.questions``."""
    return build_served_setup(stack_settings, tmp_path_factory.mktemp("served"), serving_base_model)
