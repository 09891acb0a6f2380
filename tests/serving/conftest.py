"""Serving fixtures: a served twin on the session stack, built once for every serving test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.serving_data import ServedSetup, build_served_setup
from twin_lib.settings import BaseModelRecipe, TwinSettings


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
