"""Adapters to the platform's stores: MinIO objects and snapshots, Weaviate vectors."""

from twin_lib.storage.errors import ObjectNotFoundError, ServiceUnavailableError, StorageError
from twin_lib.storage.object_store import ObjectInfo, ObjectStore
from twin_lib.storage.snapshots import SnapshotManifest, SnapshotStore
from twin_lib.storage.vector_store import (
    CollectionSchema,
    PropertySpec,
    SearchHit,
    UpsertReport,
    VectorRecord,
    VectorStore,
    chunk_collection_schema,
)

__all__ = [
    "CollectionSchema",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "PropertySpec",
    "SearchHit",
    "ServiceUnavailableError",
    "SnapshotManifest",
    "SnapshotStore",
    "StorageError",
    "UpsertReport",
    "VectorRecord",
    "VectorStore",
    "chunk_collection_schema",
]
