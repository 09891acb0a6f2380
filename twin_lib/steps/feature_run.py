"""All feature steps in one process, for ``twin features`` and for debugging without KFP.

Intermediate files land in ``workdir`` under the same names the pipeline's artifacts have,
so a run can be inspected step by step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from twin_lib.crawl.sources import Source
from twin_lib.settings import FeaturesSettings, MinioSettings, WeaviateSettings
from twin_lib.steps.crawl import crawl_to_lake
from twin_lib.steps.features import (
    chunk_documents,
    clean_documents,
    embed_chunk_file,
    load_features,
    plan_sync,
    validate_embedded_chunks,
)
from twin_lib.steps.quality import validate_documents

logger = logging.getLogger(__name__)


_FILES = (
    "raw_documents.parquet",
    "valid_documents.parquet",
    "changed_documents.parquet",
    "cleaned_documents.parquet",
    "chunks.parquet",
    "embedded_chunks.parquet",
    "valid_chunks.parquet",
    "plan.json",
    "raw_documents_report.html",
    "chunks_report.html",
)


def run_feature_steps(
    sources: Sequence[Source],
    *,
    author: str,
    workdir: Path,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    features: FeaturesSettings,
) -> dict[str, float]:
    """Crawl to load, in order; returns the metrics of every step merged."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = workdir / "raw_documents.parquet"
    crawl = crawl_to_lake(sources, author=author, minio=minio, features=features, output=raw)
    metrics = {"crawled_documents": float(crawl.documents)}
    return metrics | sync_documents(
        raw,
        crawl.complete_origins,
        workdir=workdir,
        minio=minio,
        weaviate=weaviate,
        features=features,
    )


def sync_documents(
    raw_path: Path,
    complete_origins: Sequence[str],
    *,
    workdir: Path,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    features: FeaturesSettings,
) -> dict[str, float]:
    """Every step after the crawl, from raw documents in ``raw_path`` to the feature store."""
    path = {name: workdir / name for name in _FILES}
    metrics = validate_documents(
        raw_path,
        output=path["valid_documents.parquet"],
        report_path=path["raw_documents_report.html"],
        quality=features.quality,
        minio=minio,
    )
    plan_sync(
        raw_path,
        path["valid_documents.parquet"],
        complete_origins,
        output=path["changed_documents.parquet"],
        plan_path=path["plan.json"],
        minio=minio,
        weaviate=weaviate,
        features=features,
    )
    clean_documents(path["changed_documents.parquet"], output=path["cleaned_documents.parquet"])
    chunk_documents(
        path["cleaned_documents.parquet"], output=path["chunks.parquet"], features=features
    )
    metrics |= embed_chunk_file(
        path["chunks.parquet"],
        output=path["embedded_chunks.parquet"],
        features=features,
        minio=minio,
    )
    metrics |= validate_embedded_chunks(
        path["embedded_chunks.parquet"],
        output=path["valid_chunks.parquet"],
        report_path=path["chunks_report.html"],
        features=features,
        minio=minio,
    )
    metrics |= load_features(
        path["valid_chunks.parquet"],
        path["plan.json"],
        minio=minio,
        weaviate=weaviate,
        features=features,
    )
    logger.info("feature steps done; reports in %s", workdir)
    return metrics
