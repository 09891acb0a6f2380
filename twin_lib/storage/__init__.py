"""Adapters to the platform's stores: MinIO objects and snapshots, Weaviate vectors.

The names below are loaded on first use (PEP 562): the MinIO and Weaviate clients take
seconds to import, and code that only needs the error types (the CLI at start-up) should not
pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from twin_lib.storage.errors import ObjectNotFoundError, ServiceUnavailableError, StorageError

if TYPE_CHECKING:
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

_LAZY = {
    "ObjectInfo": "object_store",
    "ObjectStore": "object_store",
    "SnapshotManifest": "snapshots",
    "SnapshotStore": "snapshots",
    "CollectionSchema": "vector_store",
    "PropertySpec": "vector_store",
    "SearchHit": "vector_store",
    "UpsertReport": "vector_store",
    "VectorRecord": "vector_store",
    "VectorStore": "vector_store",
    "chunk_collection_schema": "vector_store",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


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
