"""Crawling into the raw lake: every crawl becomes an immutable snapshot in MinIO.

A snapshot's id is derived from its documents' provenance and content (author, source URL,
content hash), so crawling sources that have not changed lands on the existing snapshot and
nothing new is written, while the same text found at a new URL is a new snapshot that holds
that URL. Its parent is the previous snapshot of the same author.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from twin_lib.crawl.sources import CrawlReport, Source, crawl_sources
from twin_lib.domain import RawDocument
from twin_lib.domain.records import records_to_table, write_records
from twin_lib.hashing import combined_hash
from twin_lib.settings import FeaturesSettings, MinioSettings
from twin_lib.storage import ObjectStore, SnapshotStore
from twin_lib.storage.snapshots import snapshot_id

logger = logging.getLogger(__name__)

RAW_DATASET = "raw-documents"


class CrawlSummary(BaseModel):
    """What a crawl step tells the next steps and the person running it."""

    snapshot_id: str
    parent_snapshot_id: str | None
    unchanged: bool
    documents: int
    crawled_origins: list[str]
    complete_origins: list[str]
    failures: list[dict[str, str]]


def _unique(documents: Sequence[RawDocument]) -> list[RawDocument]:
    """The same page reached twice (a feed and its direct URL) is one document, not a conflict."""
    seen: dict[tuple[str, str], RawDocument] = {}
    for document in documents:
        seen.setdefault((document.document_id, document.content_hash), document)
    return list(seen.values())


def raw_identity(documents: Sequence[RawDocument]) -> str:
    """Whose text, from where, and which text: not the crawl time, which changes every run."""
    return combined_hash(
        f"{d.author}\n{d.source_url}\n{d.document_id}\n{d.content_hash}" for d in documents
    )


def crawl_to_lake(
    sources: Sequence[Source],
    *,
    author: str,
    minio: MinioSettings,
    features: FeaturesSettings,
    output: Path,
) -> CrawlSummary:
    """Crawl, snapshot the raw documents in MinIO, and write them to ``output`` (Parquet)."""
    report: CrawlReport = crawl_sources(sources, author=author, settings=features.crawl)
    if not report.crawled_origins:
        reasons = "; ".join(f"{f.origin}: {f.reason}" for f in report.failures)
        raise RuntimeError(f"no source could be crawled ({reasons}); fix the sources and retry")
    documents = _unique(report.documents)
    identity = raw_identity(documents)
    sid = snapshot_id(RAW_DATASET, identity)
    documents = [d.model_copy(update={"snapshot_id": sid}) for d in documents]
    objects = ObjectStore(minio)
    objects.ensure_buckets(minio.raw_bucket)
    snapshots = SnapshotStore(objects, minio.raw_bucket)
    existing = snapshots.find(sid)
    if existing is None:
        previous = snapshots.latest(RAW_DATASET, {"author": author})
        existing = snapshots.create(
            RAW_DATASET,
            records_to_table(documents, RawDocument),
            identity=identity,
            counts={
                str(c): sum(d.category == c for d in documents)
                for c in {d.category for d in documents}
            },
            parent=previous.id if previous else None,
            labels={"author": author},
        )
        unchanged = False
    else:
        unchanged = True
    summary = CrawlSummary(
        snapshot_id=sid,
        parent_snapshot_id=existing.parent,
        unchanged=unchanged,
        documents=len(documents),
        crawled_origins=report.crawled_origins,
        complete_origins=report.complete_origins,
        failures=[f.__dict__ for f in report.failures],
    )
    objects.put_json(
        minio.raw_bucket,
        f"{features.raw_prefix}/crawl-reports/{sid}.json",
        summary.model_dump(mode="json"),
    )
    write_records(output, documents, RawDocument)
    logger.info(
        "raw snapshot %s: %d documents (%s)",
        sid,
        len(documents),
        "unchanged, nothing written" if unchanged else "written",
    )
    return summary
