"""The base-model step: the model a training run starts from, as one path or id.

A configured base model (a hub id, an ``s3://`` prefix or a local directory) is used as
given; only where none is configured is the offline base model built (once per machine, then
from the cache), so the demo and the tests need no hub while real deployments name theirs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pydantic import BaseModel

from twin_lib.settings import BaseModelRecipe
from twin_lib.training.base_model import ensure_base_model, read_record

logger = logging.getLogger(__name__)


class BaseModelSummary(BaseModel):
    """What the training step needs (``base_model``) and what the run records about it."""

    base_model: str
    offline_build: bool
    key: str | None = None
    parameters: int | None = None
    validation_loss: float | None = None
    build_seconds: float | None = None
    seconds: float


def resolve_base_model(
    configured: str | None, recipe: BaseModelRecipe, cache_dir: Path
) -> BaseModelSummary:
    """``configured`` when set; otherwise the offline model for ``recipe`` (built if missing)."""
    started = time.monotonic()
    if configured:
        logger.info("using the configured base model", extra={"base_model": configured})
        return BaseModelSummary(base_model=configured, offline_build=False, seconds=0.0)
    path = ensure_base_model(recipe, cache_dir)
    record = read_record(path)
    return BaseModelSummary(
        base_model=str(path),
        offline_build=True,
        key=record.key,
        parameters=record.parameters,
        validation_loss=record.validation_loss,
        build_seconds=record.build_seconds,
        seconds=round(time.monotonic() - started, 2),
    )
