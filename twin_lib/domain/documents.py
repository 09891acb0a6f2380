"""The document chain: raw -> cleaned -> chunk -> embedded chunk.

Every stage keeps the provenance fields (author, source URL, category, content hash, crawl
time, snapshot id) so that any vector in Weaviate can be traced back to the raw snapshot
and the exact text it came from. Ids are derived from content and location, never random,
which is what makes re-runs idempotent.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Category(StrEnum):
    """The kinds of writing the twin learns from; each has its own cleaning and chunking."""

    ARTICLE = "article"
    POST = "post"
    REPOSITORY = "repository"


def content_hash(text: str) -> str:
    """sha256 of the text, the key for change detection and deterministic ids."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id_for(source_url: str, author: str) -> str:
    """A document is identified by where it lives and whose it is, not by its text.

    This way an edited article keeps its id and its old chunks can be replaced.
    """
    return hashlib.sha256(f"{author}\n{source_url}".encode()).hexdigest()[:32]


class _Provenance(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: str
    author: str
    source_url: str
    origin: str = Field(
        description="the source as given to the crawler (feed, repository, folder, archive); "
        "documents missing from a later crawl of the same origin count as removed"
    )
    category: Category
    content_hash: str
    crawled_at: datetime
    snapshot_id: str | None = None


class RawDocument(_Provenance):
    """Text as extracted from its source, before any normalisation."""

    title: str = ""
    text: str
    metadata: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        text: str,
        author: str,
        source_url: str,
        origin: str,
        category: Category,
        title: str = "",
        metadata: dict[str, str] | None = None,
        crawled_at: datetime | None = None,
    ) -> RawDocument:
        """Build a document with its id and hash computed, so callers cannot get them wrong."""
        return cls(
            document_id=document_id_for(source_url, author),
            author=author,
            source_url=source_url,
            origin=origin,
            category=category,
            content_hash=content_hash(f"{title}\n{text}"),
            crawled_at=crawled_at or datetime.now(UTC),
            title=title,
            text=text,
            metadata=metadata or {},
        )


class CleanedDocument(_Provenance):
    """Normalised text, identical to what the inference side produces for a query."""

    title: str = ""
    text: str


class Chunk(_Provenance):
    """A piece of a cleaned document that fits the embedding model's window."""

    chunk_id: str
    chunk_index: int
    title: str = ""
    text: str
    token_count: int
    feature_version: str = Field(
        default="",
        description="model, chunking and cleaning the chunk was made with (see "
        "twin_lib.features.version)",
    )


class EmbeddedChunk(Chunk):
    """A chunk with its vector, ready for the feature store."""

    embedding: list[float]
    embedding_model: str
