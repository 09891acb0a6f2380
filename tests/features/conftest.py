from __future__ import annotations

import pytest

from twin_lib.settings import EmbeddingSettings


@pytest.fixture(scope="session")
def embedding_model():
    """The real packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    from twin_lib.features.embedding import load_model

    settings = EmbeddingSettings()
    return load_model(settings.model, settings.device)
