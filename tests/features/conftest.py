from __future__ import annotations

import uuid

import pytest

from twin_lib.settings import EmbeddingSettings, TwinSettings


@pytest.fixture(scope="session")
def embedding_model():
    """The real packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    from twin_lib.features.embedding import load_model

    settings = EmbeddingSettings()
    return load_model(settings.model, settings.device)


@pytest.fixture
def private(stack_settings: TwinSettings) -> TwinSettings:
    """Buckets and a collection of its own, so the exact counts of other tests hold."""
    tag = uuid.uuid4().hex[:8]
    minio = stack_settings.minio.model_copy(
        update={"raw_bucket": f"raw-{tag}", "features_bucket": f"features-{tag}"}
    )
    weaviate = stack_settings.weaviate.model_copy(update={"collection": f"T{tag}"})
    return stack_settings.model_copy(update={"minio": minio, "weaviate": weaviate})
