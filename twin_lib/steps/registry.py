"""Registry steps: hold a version before training, register the trained model after, and
trace a registered model back to the pages it learned from.

Lineage: model version -> dataset snapshots -> feature-store collection, feature version and
chunk ids -> raw snapshots -> source URLs, read from the dataset manifests.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from twin_lib.domain.datasets import DatasetLineage
from twin_lib.registry.models import ModelVersion
from twin_lib.registry.store import ModelRegistry, Reservation, dataset_snapshots_of
from twin_lib.settings import MinioSettings, RegistrySettings, TwinSettings
from twin_lib.steps.dataset_store import read_dataset_lineage
from twin_lib.training.config import TrainingConfig


class ModelLineage(BaseModel):
    """A model version and everything it was made from."""

    model: ModelVersion
    datasets: list[DatasetLineage]
    raw_snapshot_ids: list[str]
    source_urls: list[str]


def reserve_model_version(settings: TwinSettings, name: str | None = None) -> Reservation:
    """The next version of the model; train with ``output_uri`` set to its location."""
    registry = ModelRegistry(settings.minio, settings.registry)
    return registry.reserve(name or settings.registry.default_model)


def register_trained_model(
    settings: TwinSettings,
    config: TrainingConfig,
    *,
    name: str | None = None,
    launch: dict[str, Any] | None = None,
    by: str = "training pipeline",
) -> ModelVersion:
    """Register the model ``config`` trained (outputs at ``config.output_uri``) as a
    candidate, with its datasets parsed from the config's URIs and metrics.json beside it."""
    uris = [*config.sft_data.values(), *(config.dpo_data or {}).values()]
    return ModelRegistry(settings.minio, settings.registry).register_candidate(
        name or settings.registry.default_model,
        config.output_uri,
        hyperparameters=config.model_dump(mode="json"),
        base_model=config.base_model,
        dataset_snapshots=dataset_snapshots_of(uris),
        launch=launch,
        by=by,
    )


def model_lineage(
    minio: MinioSettings,
    name: str,
    version: str | None = None,
    registry: RegistrySettings | None = None,
) -> ModelLineage:
    """The model's datasets and, through their manifests, raw snapshots and source URLs."""
    model = ModelRegistry(minio, registry).get(name, version)
    datasets = [
        read_dataset_lineage(minio, kind, snapshot_id)
        for kind, snapshot_id in sorted(model.dataset_snapshots.items())
    ]
    return ModelLineage(
        model=model,
        datasets=datasets,
        raw_snapshot_ids=sorted({r for d in datasets for r in d.raw_snapshot_ids}),
        source_urls=sorted({u for d in datasets for u in d.source_urls}),
    )
