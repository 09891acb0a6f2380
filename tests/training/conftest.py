"""Fixtures shared by the training tests: the tiny offline base model, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_lib.settings import BaseModelRecipe
from twin_lib.training.base_model import ensure_base_model


@pytest.fixture(scope="session")
def tiny_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of this session only, so the cache behaviour itself is tested from empty."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_base_model(tiny_cache_dir: Path) -> Path:
    """A real (tiny) Llama with the platform's tokenizer and chat template, built offline."""
    return ensure_base_model(BaseModelRecipe.tiny(), tiny_cache_dir)
