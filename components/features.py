"""KFP components of the feature pipeline: one ``twin_lib`` call each.

No ``from __future__ import annotations`` here: KFP reads the real annotation objects.

Endpoints and credentials come from the ``TWIN_*`` environment (ConfigMaps and Secrets on the
cluster, ``twin_lib.settings.to_env`` locally); feature settings (crawler limits, chunk sizes,
thresholds, model) come from the ``features`` run parameter so they show in the KFP UI.
Imports are inside the functions because each runs alone in the components image.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from twin_lib.settings import load_settings

# What a component used on its own runs in; inside a pipeline, pipelines.platform.for_cluster
# sets each task's image from the settings of the compile.
IMAGE = load_settings().kfp.components_image


def _component(func):  # noqa: ANN001, ANN202 - decorator factory shared by every step
    return dsl.component(base_image=IMAGE, install_kfp_package=False)(func)


@_component
def crawl(
    sources: list,
    author: str,
    features: dict,
    raw_documents: Output[Dataset],
    metrics: Output[Metrics],
) -> list:
    """Crawl the sources into a raw-lake snapshot; returns the origins whose crawl was a
    complete listing (folder, repository, export archive): only these may delete documents."""
    from twin_lib.crawl.sources import Source
    from twin_lib.settings import FeaturesSettings, load_settings
    from twin_lib.steps.crawl import crawl_to_lake

    summary = crawl_to_lake(
        [Source.model_validate(s if isinstance(s, dict) else {"url": s}) for s in sources],
        author=author,
        minio=load_settings().minio,
        features=FeaturesSettings.model_validate(features),
        output=raw_documents.path,
    )
    raw_documents.metadata.update(
        {
            "snapshot_id": summary.snapshot_id,
            "documents": summary.documents,
            "unchanged": summary.unchanged,
        }
    )
    metrics.log_metric("crawled_documents", summary.documents)
    metrics.log_metric("crawl_failures", len(summary.failures))
    metrics.log_metric("crawled_sources", len(summary.crawled_origins))
    metrics.log_metric("complete_sources", len(summary.complete_origins))
    return summary.complete_origins


@_component
def validate_documents(
    features: dict,
    raw_documents: Input[Dataset],
    valid_documents: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
) -> None:
    """Great Expectations on raw documents; failures go to the quarantine in MinIO."""
    from pathlib import Path

    from twin_lib.settings import FeaturesSettings, load_settings
    from twin_lib.steps.quality import validate_documents as run

    values = run(
        Path(raw_documents.path),
        output=Path(valid_documents.path),
        report_path=Path(report.path),
        quality=FeaturesSettings.model_validate(features).quality,
        minio=load_settings().minio,
    )
    for name, value in values.items():
        metrics.log_metric(name, value)


@_component
def plan_sync(
    features: dict,
    complete_origins: list,
    raw_documents: Input[Dataset],
    valid_documents: Input[Dataset],
    changed_documents: Output[Dataset],
    plan: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Compare with the feature store: only new or changed documents go on."""
    from pathlib import Path

    from twin_lib.settings import FeaturesSettings, load_settings
    from twin_lib.steps.features import plan_sync as run

    settings = load_settings()
    result = run(
        Path(raw_documents.path),
        Path(valid_documents.path),
        complete_origins,
        output=Path(changed_documents.path),
        plan_path=Path(plan.path),
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=FeaturesSettings.model_validate(features),
    )
    metrics.log_metric("documents_to_load", len(result.upsert))
    metrics.log_metric("documents_unchanged", result.unchanged)
    metrics.log_metric("documents_to_delete", len(result.delete))


@_component
def clean(documents: Input[Dataset], cleaned_documents: Output[Dataset]) -> int:
    """Normalise text per category with the function inference uses too."""
    from pathlib import Path

    from twin_lib.steps.features import clean_documents

    return clean_documents(Path(documents.path), output=Path(cleaned_documents.path))


@_component
def chunk(features: dict, cleaned_documents: Input[Dataset], chunks: Output[Dataset]) -> int:
    """Token-aware chunks that fit the embedding model's window."""
    from pathlib import Path

    from twin_lib.settings import FeaturesSettings
    from twin_lib.steps.features import chunk_documents

    return chunk_documents(
        Path(cleaned_documents.path),
        output=Path(chunks.path),
        features=FeaturesSettings.model_validate(features),
    )


@_component
def embed(
    features: dict,
    chunks: Input[Dataset],
    embedded_chunks: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Embed chunks with the configured model, through the embedding cache in MinIO."""
    from pathlib import Path

    from twin_lib.settings import FeaturesSettings, load_settings
    from twin_lib.steps.features import embed_chunk_file

    values = embed_chunk_file(
        Path(chunks.path),
        output=Path(embedded_chunks.path),
        features=FeaturesSettings.model_validate(features),
        minio=load_settings().minio,
    )
    for name, value in values.items():
        metrics.log_metric(name, value)


@_component
def validate_chunks(
    features: dict,
    embedded_chunks: Input[Dataset],
    valid_chunks: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
) -> None:
    """Great Expectations on chunks: token bounds, no empty chunk, vector size and norm."""
    from pathlib import Path

    from twin_lib.settings import FeaturesSettings, load_settings
    from twin_lib.steps.features import validate_embedded_chunks

    values = validate_embedded_chunks(
        Path(embedded_chunks.path),
        output=Path(valid_chunks.path),
        report_path=Path(report.path),
        features=FeaturesSettings.model_validate(features),
        minio=load_settings().minio,
    )
    for name, value in values.items():
        metrics.log_metric(name, value)


@_component
def load(
    features: dict,
    valid_chunks: Input[Dataset],
    plan: Input[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Replace changed documents' chunks in Weaviate and delete removed documents."""
    from pathlib import Path

    from twin_lib.settings import FeaturesSettings, load_settings
    from twin_lib.steps.features import load_features

    settings = load_settings()
    values = load_features(
        Path(valid_chunks.path),
        Path(plan.path),
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=FeaturesSettings.model_validate(features),
    )
    for name, value in values.items():
        metrics.log_metric(name, value)
