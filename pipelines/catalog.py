"""Every pipeline the platform ships, by the name the CLI and the manifests use."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.feature_pipeline import feature_pipeline
from pipelines.training_pipeline import training_pipeline

PIPELINES: dict[str, Callable[..., object]] = {
    "feature": feature_pipeline,
    "training": training_pipeline,
}
