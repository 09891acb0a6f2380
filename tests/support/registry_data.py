"""Registry metadata for tests that need a model version but no registry behind it."""

from __future__ import annotations

from twin_lib.registry.models import CodeVersion, ModelStatus, ModelVersion, StatusChange


def model_version(
    version: str = "v0003", status: ModelStatus = ModelStatus.APPROVED, name: str = "twin"
) -> ModelVersion:
    """A version of ``name`` in ``status`` whose outputs sit where the registry puts them."""
    uri = f"s3://twin-models/registry/{name}/{version}/"
    return ModelVersion(
        name=name,
        version=version,
        status=status,
        history=[StatusChange(status=status, by="test", reason="test")],
        base_model="tiny",
        dataset_snapshots={},
        hyperparameters={},
        code=CodeVersion(package="llm-twin", version="0"),
        output_uri=uri,
        adapter_uri=f"{uri}adapter/",
        merged_uri=f"{uri}merged/",
    )
