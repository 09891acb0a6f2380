"""Pydantic models for the documents that flow from crawlers to the feature store."""

from twin_lib.domain.documents import (
    Category,
    Chunk,
    CleanedDocument,
    EmbeddedChunk,
    RawDocument,
    content_hash,
    document_id_for,
)

__all__ = [
    "Category",
    "Chunk",
    "CleanedDocument",
    "EmbeddedChunk",
    "RawDocument",
    "content_hash",
    "document_id_for",
]
