"""Validating and publishing a dataset: the common tail of the instruction and preference steps.

Validation runs the dataset suite in the base model's tokens; failing rows, together with
the rows the caller already set aside (duplicates, generation failures), are quarantined
under the id of the snapshot the passing rows make. The report and quarantines are written
before the gate, the split files and manifest after it, the manifest last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from twin_lib.datasets.tables import Example, content_hash, dataset_snapshot_id, examples_to_table
from twin_lib.domain.datasets import (
    SPLITS,
    DatasetKind,
    DatasetManifest,
    DatasetSummary,
    Split,
    SplitFile,
    TokenUsage,
)
from twin_lib.hashing import sha256_file
from twin_lib.quality.checks import Check
from twin_lib.quality.dataset_checks import chat_token_counter, dataset_checks, examples_frame
from twin_lib.quality.gate import QualityGateError, QuarantinedRecord
from twin_lib.quality.report import render_report, validation_metrics
from twin_lib.quality.validation import ValidationResult, validate_frame
from twin_lib.settings import DatasetSettings, MinioSettings
from twin_lib.steps.dataset_store import (
    dataset_uris,
    find_manifest,
    previous_snapshot,
    publish,
    split_key,
)
from twin_lib.steps.quality import write_quarantine
from twin_lib.storage import ObjectStore

logger = logging.getLogger(__name__)


INHERITED = {"author", "generator", "collection", "feature_version", "features_hash"}


class Origin(BaseModel):
    """Where a dataset's examples came from, carried into its manifest."""

    author: str
    generator: str
    collection: str
    feature_version: str
    features_hash: str
    source_snapshot: str | None = None
    responder: str | None = None
    usage: TokenUsage = TokenUsage()


def example_record(example: Example, **extra: object) -> dict[str, object]:
    return {**example.model_dump(mode="json"), **extra}


def validate_and_publish(
    kind: DatasetKind,
    rows: Sequence[tuple[Example, Split]],
    *,
    origin: Origin,
    held: dict[str, list[QuarantinedRecord]],
    datasets: DatasetSettings,
    minio: MinioSettings,
    base_model: Path,
    output_dir: Path,
) -> DatasetSummary:
    """Validate, quarantine, report, gate, write local files, publish (or reuse) the snapshot."""
    from transformers import AutoTokenizer

    output_dir.mkdir(parents=True, exist_ok=True)
    suite = f"{kind}_examples"
    documents = len({e.document_id for e, _ in rows})
    row_checks, whole_checks = dataset_checks(datasets, kind=kind, documents=documents)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    frame = examples_frame(rows, chat_token_counter(tokenizer))
    result = validate_frame(frame, [*row_checks, *whole_checks], suite)
    passed = [row for position, row in enumerate(rows) if position not in result.reasons]
    held[suite] = [
        QuarantinedRecord(
            suite=suite,
            reasons=result.reasons[position],
            record=example_record(example, split=split),
        )
        for position, (example, split) in enumerate(rows)
        if position in result.reasons
    ]
    digest = content_hash(kind, passed)
    snapshot_id = dataset_snapshot_id(kind, digest)
    objects = ObjectStore(minio)
    objects.ensure_buckets(minio.datasets_bucket)
    quarantined = {
        name: len(records)
        for name, records in held.items()
        if quarantine(
            minio,
            prefix=datasets.quarantine_prefix,
            suite=name,
            snapshot_id=snapshot_id,
            records=records,
        )
    }
    report = output_dir / f"{suite}_validation.html"
    report.write_text(
        render_report(result, held[suite], max_failure_rate=datasets.max_failure_rate),
        encoding="utf-8",
    )
    _gate(result, whole_checks, passed, documents, datasets, report)

    files: dict[str, Path] = {}
    for split in SPLITS:
        path = output_dir / f"{split}.parquet"
        pq.write_table(examples_to_table(kind, [e for e, s in passed if s == split]), str(path))
        files[split] = path
    manifest = find_manifest(objects, minio.datasets_bucket, kind, snapshot_id)
    reused = manifest is not None
    if manifest is None:
        manifest = _manifest(
            kind, snapshot_id, digest, passed, files, origin, quarantined, datasets
        )
        manifest.parent = previous_snapshot(
            objects, minio.datasets_bucket, kind, origin.author, snapshot_id
        )
        publish(objects, minio.datasets_bucket, manifest, files)
    else:
        logger.info("dataset snapshot already exists", extra={"snapshot": snapshot_id})
    (output_dir / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return _summary(manifest, reused, files, report, result, minio)


def _gate(
    result: ValidationResult,
    whole_checks: Sequence[Check],
    passed: Sequence[tuple[Example, Split]],
    documents: int,
    datasets: DatasetSettings,
    report: Path,
) -> None:
    if result.failure_rate > datasets.max_failure_rate:
        raise QualityGateError(
            f"{result.suite}: {result.failed_rows}/{result.total} examples failed validation "
            f"({result.failure_rate:.1%} > {datasets.max_failure_rate:.1%} allowed). Inspect "
            f"{report} and the quarantine, or raise datasets.max_failure_rate"
        )
    whole = {c.describe() for c in whole_checks}
    failed = [c.check for c in result.checks if c.check in whole and not c.success]
    splits = {split for _, split in passed}
    wanted = {"train", "test"} if documents >= 2 else {"train"}
    if failed or not wanted <= splits:
        raise QualityGateError(
            f"the dataset's splits are wrong after validation: {failed or sorted(splits)} "
            f"(wanted {sorted(wanted)}); see {report}. Add documents, lower "
            "datasets.test_fraction, or fix what the quarantine shows"
        )


def _manifest(
    kind: DatasetKind,
    snapshot_id: str,
    digest: str,
    passed: Sequence[tuple[Example, Split]],
    files: dict[str, Path],
    origin: Origin,
    quarantined: dict[str, int],
    datasets: DatasetSettings,
) -> DatasetManifest:
    examples = [e for e, _ in passed]
    return DatasetManifest(
        snapshot_id=snapshot_id,
        kind=kind,
        author=origin.author,
        created=datetime.now(UTC),
        generator=origin.generator,
        counts={s: sum(1 for _, split in passed if split == s) for s in SPLITS},
        quarantined=quarantined,
        collection=origin.collection,
        feature_version=origin.feature_version,
        features_hash=origin.features_hash,
        chunk_ids=sorted({c for e in examples for c in e.chunk_ids}),
        raw_snapshot_ids=sorted({e.raw_snapshot_id for e in examples if e.raw_snapshot_id}),
        source_urls=sorted({e.source_url for e in examples}),
        source_snapshot=origin.source_snapshot,
        content_hash=digest,
        files={
            split: SplitFile(
                key=split_key(kind, snapshot_id, split),
                sha256=sha256_file(path),
                rows=pq.read_metadata(str(path)).num_rows,
            )
            for split, path in files.items()
        },
        usage=origin.usage,
        responder=origin.responder,
        seed=datasets.seed,
        test_fraction=datasets.test_fraction,
    )


def _summary(
    manifest: DatasetManifest,
    reused: bool,
    files: dict[str, Path],
    report: Path,
    result: ValidationResult,
    minio: MinioSettings,
) -> DatasetSummary:
    usage = manifest.usage
    metrics = {
        **validation_metrics(result),
        **{f"{split}_examples": float(n) for split, n in manifest.counts.items()},
        **{f"quarantined_{suite}": float(n) for suite, n in manifest.quarantined.items()},
        "llm_requests": float(usage.requests),
        "llm_attempts": float(usage.attempts),
        "llm_prompt_tokens": float(usage.prompt_tokens),
        "llm_completion_tokens": float(usage.completion_tokens),
    }
    return DatasetSummary(
        snapshot_id=manifest.snapshot_id,
        kind=manifest.kind,
        reused=reused,
        generator=manifest.generator,
        counts=manifest.counts,
        quarantined=manifest.quarantined,
        uris=dataset_uris(minio, manifest.kind, manifest.snapshot_id),
        manifest_uri=f"s3://{minio.datasets_bucket}/{manifest.kind}/{manifest.snapshot_id}/"
        "manifest.json",
        local_files={split: str(path) for split, path in files.items()},
        reports={"validation": str(report)},
        usage=usage,
        metrics=metrics,
    )


def quarantine(
    minio: MinioSettings,
    *,
    prefix: str,
    suite: str,
    snapshot_id: str,
    records: Sequence[QuarantinedRecord],
) -> str | None:
    """``<prefix>/<suite>/<snapshot>.jsonl`` in the datasets bucket, as the feature suites do."""
    return write_quarantine(
        records,
        minio=minio,
        bucket=minio.datasets_bucket,
        key=f"{prefix}/{suite}/{snapshot_id}.jsonl",
    )
