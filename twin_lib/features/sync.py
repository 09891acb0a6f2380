"""Planning a sync of validated documents into the feature store: pure, no I/O.

The rules this module decides, and why:

- A document is up to date only when the recorded state (written after a successful load)
  and the store agree on its content hash and feature version. The store alone cannot tell
  a complete document from one whose load died half-way; the state alone cannot tell that
  the collection was emptied behind its back.
- A document is deleted only when an origin whose crawl was a *complete listing* (a folder,
  a repository, an export archive) no longer contains it. A feed is a rolling window and a
  web page may be down: their missing documents are kept.
- A document that yields no chunk is recorded with zero chunks and is done, not retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from twin_lib.domain import RawDocument

StoredVersions = Mapping[str, set[tuple[str, str]]]
"""document id -> the (content hash, feature version) pairs its chunks in the store carry."""


class SyncedDocument(BaseModel):
    """What the feature store holds for one document, and where it was crawled from."""

    origin: str
    content_hash: str
    author: str = ""
    feature_version: str = ""
    chunks: int = Field(default=0, description="chunks loaded; 0 for a document that has none")


class SyncPlan(BaseModel):
    """Which documents to (re)load, which to delete, and the state to record afterwards."""

    upsert: list[str]
    delete: list[str]
    unchanged: int
    feature_version: str
    current: dict[str, SyncedDocument]


def is_up_to_date(
    document: RawDocument,
    entry: SyncedDocument | None,
    stored: set[tuple[str, str]],
    feature_version: str,
) -> bool:
    """The state records this text and feature version, and the store holds exactly that."""
    if entry is None or (entry.content_hash, entry.feature_version) != (
        document.content_hash,
        feature_version,
    ):
        return False
    expected = {(document.content_hash, feature_version)} if entry.chunks else set()
    return stored == expected


def decide(
    crawled: Sequence[RawDocument],
    valid: Sequence[RawDocument],
    complete_origins: Sequence[str],
    stored: StoredVersions,
    state: Mapping[str, SyncedDocument],
    feature_version: str,
) -> SyncPlan:
    """Which valid documents to (re)load and which recorded documents to delete."""
    upsert = [
        d.document_id
        for d in valid
        if not is_up_to_date(
            d, state.get(d.document_id), stored.get(d.document_id, set()), feature_version
        )
    ]
    crawled_ids = {d.document_id for d in crawled}
    complete = set(complete_origins)
    delete = sorted(
        doc for doc, entry in state.items() if entry.origin in complete and doc not in crawled_ids
    )
    return SyncPlan(
        upsert=upsert,
        delete=delete,
        unchanged=len(valid) - len(upsert),
        feature_version=feature_version,
        current={
            d.document_id: SyncedDocument(
                origin=d.origin,
                content_hash=d.content_hash,
                author=d.author,
                feature_version=feature_version,
            )
            for d in valid
        },
    )
