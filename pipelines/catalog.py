"""Every pipeline the platform ships, by the name the CLI and the manifests use.

Keys are Kubernetes names (the manifests call them ``twin-<key>``), hence ``llm-twin``.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.feature_pipeline import feature_pipeline
from pipelines.llm_twin_pipeline import llm_twin
from pipelines.promote_pipeline import promote
from pipelines.training_pipeline import training_pipeline

PIPELINES: dict[str, Callable[..., object]] = {
    "feature": feature_pipeline,
    "training": training_pipeline,
    "llm-twin": llm_twin,
    "promote": promote,
}
