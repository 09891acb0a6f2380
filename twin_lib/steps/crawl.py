"""Crawling into the raw lake: every crawl becomes an immutable snapshot in MinIO.

A snapshot's id is derived from its documents' provenance and content (author, source URL,
content hash), so crawling sources that have not changed lands on the existing snapshot and
nothing new is written, while the same text found at a new URL is a new snapshot that holds
that URL. Its parent is the previous snapshot of the same author.

Next to the snapshots, each (author, source) keeps a small crawl state (validators, head
commit, file stamps, and the snapshot holding its documents): the next crawl, here or in a
pipeline pod, asks only for what changed and takes the rest from that snapshot.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ValidationError

from twin_lib.crawl.context import Expansion
from twin_lib.crawl.sources import CrawlReport, Source, crawl_sources
from twin_lib.crawl.state import PreviousCrawl, SourceState
from twin_lib.crawl.syndication import SYNDICATED_AT, merge_syndicated
from twin_lib.domain import RawDocument, document_id_for
from twin_lib.domain.records import records_to_table, table_to_records, write_records
from twin_lib.hashing import combined_hash, sha256_text
from twin_lib.settings import FeaturesSettings, MinioSettings
from twin_lib.storage import ObjectNotFoundError, ObjectStore, SnapshotStore
from twin_lib.storage.snapshots import snapshot_id

logger = logging.getLogger(__name__)

RAW_DATASET = "raw-documents"
EXAMPLES_PER_REASON = 20


class LeftOut(BaseModel):
    url: str
    reason: str


class SourceExpansion(BaseModel):
    """How one web source became pages (see ``twin_lib.crawl.context.Expansion``).

    ``left_out_counts`` counts every page left out, by reason; ``left_out`` names the first
    ``EXAMPLES_PER_REASON`` of each, so a site of thousands of pages keeps a small report.
    """

    source: str
    method: str
    found: int
    taken: int
    left_out_counts: dict[str, int]
    left_out: list[LeftOut]
    tried: list[str]

    @classmethod
    def of(cls, source: str, expansion: Expansion) -> SourceExpansion:
        counts = Counter(reason for _, reason in expansion.left_out)
        shown: Counter[str] = Counter()
        examples = []
        for url, reason in expansion.left_out:
            shown[reason] += 1
            if shown[reason] <= EXAMPLES_PER_REASON:
                examples.append(LeftOut(url=url, reason=reason))
        return cls(
            source=source,
            method=expansion.method,
            found=expansion.found,
            taken=expansion.taken,
            left_out_counts=dict(counts.most_common()),
            left_out=examples,
            tried=expansion.tried,
        )


class CrawlSummary(BaseModel):
    """What a crawl step tells the next steps and the person running it.

    ``reused`` counts documents taken from the previous crawl without reading them again;
    ``syndicated`` the copies of an article folded into one document.
    """

    snapshot_id: str
    parent_snapshot_id: str | None
    unchanged: bool
    documents: int
    crawled_origins: list[str]
    complete_origins: list[str]
    failures: list[dict[str, str]]
    reused: int = 0
    syndicated: int = 0
    expansions: list[SourceExpansion] = []


def _unique(documents: Sequence[RawDocument]) -> list[RawDocument]:
    """The same page reached twice (a feed and its direct URL) is one document, not a conflict."""
    seen: dict[tuple[str, str], RawDocument] = {}
    for document in documents:
        seen.setdefault((document.document_id, document.content_hash), document)
    return list(seen.values())


def raw_identity(documents: Sequence[RawDocument]) -> str:
    """Whose text, from where, and which text: not the crawl time, which changes every run.

    Where else an article is published counts too, written only when there is such a place
    so that the snapshots of crawls without copies keep their ids.
    """
    return combined_hash(
        f"{d.author}\n{d.source_url}\n{d.document_id}\n{d.content_hash}"
        + (f"\n{d.metadata[SYNDICATED_AT]}" if SYNDICATED_AT in d.metadata else "")
        for d in documents
    )


def state_key(features: FeaturesSettings, author: str, source: str) -> str:
    """Where one (author, source)'s crawl state lives in the raw bucket."""
    return (
        f"{features.raw_prefix}/crawl-state/{sha256_text(author)[:16]}/"
        f"{sha256_text(source)[:32]}.json"
    )


def load_previous(
    objects: ObjectStore,
    snapshots: SnapshotStore,
    sources: Sequence[Source],
    *,
    author: str,
    bucket: str,
    features: FeaturesSettings,
) -> dict[str, PreviousCrawl]:
    """Each source's last crawl state with its documents, read once per snapshot.

    A state that cannot be read (an older format, a snapshot since deleted) is skipped:
    the source is then crawled in full, which is always correct, only slower. A copy of an
    article merged into another source's document is rebuilt from that document (same
    text, the copy's URL), so an unchanged copy is not fetched again either.
    """
    states: dict[str, SourceState] = {}
    for source in sources:
        try:
            raw = objects.get_json(bucket, state_key(features, author, source.url))
            states[source.url] = SourceState.model_validate(raw)
        except ObjectNotFoundError:
            continue
        except ValidationError as error:
            logger.warning(
                "crawl state of %s unreadable (%s); crawling it in full", source.url, error
            )
    documents: dict[str, dict[str, RawDocument]] = {}
    for snapshot in {s.snapshot_id for s in states.values() if s.snapshot_id}:
        try:
            table = snapshots.read_table(snapshot)
        except ObjectNotFoundError:
            logger.warning("snapshot %s of the last crawl is gone; crawling in full", snapshot)
            continue
        kept = table_to_records(table, RawDocument)
        documents[snapshot] = {d.document_id: d for d in kept}
        documents[snapshot].update((d.document_id, d) for d in syndicated_copies(kept))
    previous = {}
    for url, state in states.items():
        known = documents.get(state.snapshot_id or "", {})
        own = (known.get(i) for i in state.document_ids)
        mine = {d.document_id: d.model_copy(update={"origin": url}) for d in own if d}
        previous[url] = PreviousCrawl(state, mine)
    return previous


def syndicated_copies(documents: Sequence[RawDocument]) -> list[RawDocument]:
    """The copies that ``merge_syndicated`` folded into these documents, as documents again."""
    copies = []
    for document in documents:
        for url in document.metadata.get(SYNDICATED_AT, "").splitlines():
            metadata = {k: v for k, v in document.metadata.items() if k != SYNDICATED_AT}
            copies.append(
                document.model_copy(
                    update={
                        "document_id": document_id_for(url, document.author),
                        "source_url": url,
                        "metadata": metadata,
                    }
                )
            )
    return copies


def crawl_to_lake(
    sources: Sequence[Source],
    *,
    author: str,
    minio: MinioSettings,
    features: FeaturesSettings,
    output: Path,
) -> CrawlSummary:
    """Crawl, snapshot the raw documents in MinIO, and write them to ``output`` (Parquet)."""
    objects = ObjectStore(minio)
    objects.ensure_buckets(minio.raw_bucket)
    snapshots = SnapshotStore(objects, minio.raw_bucket)
    previous = (
        load_previous(
            objects,
            snapshots,
            sources,
            author=author,
            bucket=minio.raw_bucket,
            features=features,
        )
        if features.crawl.conditional_fetching
        else {}
    )
    report: CrawlReport = crawl_sources(
        sources, author=author, settings=features.crawl, previous=previous
    )
    if not report.crawled_origins:
        reasons = "; ".join(f"{f.origin}: {f.reason}" for f in report.failures)
        raise RuntimeError(f"no source could be crawled ({reasons}); fix the sources and retry")
    unique = _unique(report.documents)
    documents = merge_syndicated(unique)
    identity = raw_identity(documents)
    sid = snapshot_id(RAW_DATASET, identity)
    documents = [d.model_copy(update={"snapshot_id": sid}) for d in documents]
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
        reused=report.reused,
        syndicated=len(unique) - len(documents),
        expansions=[SourceExpansion.of(url, e) for url, e in report.expansions.items()],
    )
    for source, state in report.states.items():
        state.snapshot_id = sid
        objects.put_json(
            minio.raw_bucket, state_key(features, author, source), state.model_dump(mode="json")
        )
    objects.put_json(
        minio.raw_bucket,
        f"{features.raw_prefix}/crawl-reports/{sid}.json",
        summary.model_dump(mode="json"),
    )
    write_records(output, documents, RawDocument)
    logger.info(
        "raw snapshot %s: %d documents, %d unchanged since the last crawl (%s)",
        sid,
        len(documents),
        report.reused,
        "unchanged, nothing written" if unchanged else "written",
    )
    return summary
