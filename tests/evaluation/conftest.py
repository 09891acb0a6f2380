"""Evaluation fixtures: the feature embedder (the served twin is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from twin_lib.evaluation.vectors import Embedder
from twin_lib.settings import EmbeddingSettings


@pytest.fixture(scope="session")
def embed() -> Embedder:
    """The feature pipeline's embedding model, loaded once."""
    from twin_lib.steps.evaluation import embedder

    return embedder(EmbeddingSettings())
