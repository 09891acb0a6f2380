"""Filling KFP output artifacts from step summaries, shared by components of one shape.

Components import this inside their function body: it is installed with them in the image.
"""

import shutil

from kfp.dsl import HTML, Dataset, Metrics

from twin_lib.domain.datasets import DatasetSummary


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
