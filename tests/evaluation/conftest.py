"""Evaluation fixtures: the served twin of the serving tests, and the feature embedder."""

from __future__ import annotations

import pytest

from tests.serving.conftest import served_setup, serving_base_model
from twin_lib.evaluation.vectors import Embedder
from twin_lib.settings import EmbeddingSettings

__all__ = ["embed", "served_setup", "serving_base_model"]


@pytest.fixture(scope="session")
def embed() -> Embedder:
    """The feature pipeline's embedding model, loaded once."""
    from twin_lib.steps.evaluation import embedder

    return embedder(EmbeddingSettings())
