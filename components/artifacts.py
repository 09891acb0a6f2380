"""Filling KFP output artifacts from step summaries, shared by components of one shape.

Components import this inside their function body: it is installed with them in the image.
"""

import shutil
from pathlib import Path

from kfp.dsl import HTML, Dataset, Metrics

from twin_lib.domain.datasets import DatasetKind, DatasetSummary


def publish_dataset(
    summary: DatasetSummary, dataset: Dataset, report: HTML, metrics: Metrics
) -> None:
    """A dataset step's snapshot, its validation report and metrics.

    The artifact holds the local copy of the splits; its metadata says where the snapshot
    lives in MinIO, which is what later steps and the trainer read.
    """
    dataset.metadata.update(
        {
            "snapshot_id": summary.snapshot_id,
            "manifest_uri": summary.manifest_uri,
            "reused": summary.reused,
            **summary.counts,
        }
    )
    if summary.reports:
        shutil.copyfile(next(iter(summary.reports.values())), report.path)
    for name, value in summary.metrics.items():
        metrics.log_metric(name, value)


def dataset_step(
    kind: DatasetKind,
    source: str,
    datasets: dict,
    base_model: str,
    dataset: Dataset,
    report: HTML,
    metrics: Metrics,
) -> str:
    """Build one dataset snapshot (instruction: ``source`` is the author; preference: the
    instruction snapshot id) with the run's ``datasets`` settings; returns the snapshot id."""
    from twin_lib.settings import load_settings
    from twin_lib.steps.datasets import build_instruction_dataset, build_preference_dataset
    from twin_lib.steps.model_files import local_model_dir

    settings = load_settings(datasets=datasets)
    common = {
        "minio": settings.minio,
        "datasets": settings.datasets,
        "base_model": local_model_dir(base_model, settings),
        "output_dir": Path(dataset.path),
    }
    summary = (
        build_instruction_dataset(source, weaviate=settings.weaviate, **common)
        if kind == "instruction"
        else build_preference_dataset(source, **common)
    )
    publish_dataset(summary, dataset, report, metrics)
    return summary.snapshot_id
