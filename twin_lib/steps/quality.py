"""Validation steps: validate, quarantine failures in MinIO, write the report, apply the gate.

The report and the quarantine are written before the gate is applied, so a failed run
still leaves behind everything needed to see why it failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from twin_lib.domain import EmbeddedChunk, RawDocument
from twin_lib.domain.records import read_records, write_records
from twin_lib.quality.checks import Check, chunk_checks, raw_document_checks
from twin_lib.quality.frames import chunks_frame, raw_documents_frame
from twin_lib.quality.gate import QuarantinedRecord, enforce_failure_threshold, split_by_validation
from twin_lib.quality.report import render_report, validation_metrics
from twin_lib.quality.validation import validate_frame
from twin_lib.settings import MinioSettings, QualitySettings
from twin_lib.storage import ObjectStore

logger = logging.getLogger(__name__)


def write_quarantine(
    quarantined: Sequence[QuarantinedRecord], *, minio: MinioSettings, bucket: str, key: str
) -> str | None:
    """One JSON Lines object per suite and snapshot: re-running overwrites, never duplicates."""
    if not quarantined:
        return None
    objects = ObjectStore(minio)
    objects.ensure_buckets(bucket)
    body = "".join(json.dumps(q.model_dump(mode="json")) + "\n" for q in quarantined)
    objects.put_bytes(bucket, key, body.encode(), content_type="application/x-ndjson")
    logger.warning("%d records quarantined at s3://%s/%s", len(quarantined), bucket, key)
    return f"s3://{bucket}/{key}"


def _validate(
    records: Sequence[BaseModel],
    frame: pd.DataFrame,
    checks: list[Check],
    *,
    suite: str,
    quality: QualitySettings,
    minio: MinioSettings,
    bucket: str,
    report_path: Path,
) -> tuple[list[BaseModel], dict[str, float]]:
    result = validate_frame(frame, checks, suite)
    passed, quarantined = split_by_validation(records, result)
    snapshot = next((getattr(r, "snapshot_id", None) for r in records), None) or "unversioned"
    write_quarantine(
        quarantined,
        minio=minio,
        bucket=bucket,
        key=f"{quality.quarantine_prefix}/{suite}/{snapshot}.jsonl",
    )
    report_path.write_text(
        render_report(result, quarantined, max_failure_rate=quality.max_failure_rate),
        encoding="utf-8",
    )
    enforce_failure_threshold(result, quality.max_failure_rate)
    return passed, validation_metrics(result)


def validate_documents(
    input_path: Path,
    *,
    output: Path,
    report_path: Path,
    quality: QualitySettings,
    minio: MinioSettings,
) -> dict[str, float]:
    """Validate raw documents; passing ones go to ``output``; returns metrics."""
    documents = read_records(input_path, RawDocument)
    passed, metrics = _validate(
        documents,
        raw_documents_frame(documents),
        raw_document_checks(quality),
        suite="raw_documents",
        quality=quality,
        minio=minio,
        bucket=minio.raw_bucket,
        report_path=report_path,
    )
    write_records(output, passed, RawDocument)
    return metrics


def validate_chunks(
    input_path: Path,
    *,
    output: Path,
    report_path: Path,
    quality: QualitySettings,
    minio: MinioSettings,
    max_tokens: int,
    max_chars: int,
    dimension: int,
) -> dict[str, float]:
    """Validate embedded chunks against the model's window, the character cap and vector size."""
    chunks = read_records(input_path, EmbeddedChunk)
    passed, metrics = _validate(
        chunks,
        chunks_frame(chunks),
        chunk_checks(quality, max_tokens=max_tokens, max_chars=max_chars, dimension=dimension),
        suite="chunks",
        quality=quality,
        minio=minio,
        bucket=minio.features_bucket,
        report_path=report_path,
    )
    write_records(output, passed, EmbeddedChunk)
    return metrics
