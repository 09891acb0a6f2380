"""The sync state in MinIO: one object per document, and the collection's embedding binding.

One object per document (``<state_prefix>/<collection>/documents/<id>.json``) instead of one
shared file: a manual run during the nightly refresh writes only the documents it loaded,
so neither run can overwrite the other's updates with a stale copy of the whole state.

The binding (``<state_prefix>/<collection>/collection.json``) ties a collection to one
embedding identity: vectors of two models are not comparable, so loading another model's
vectors into a bound collection is refused.

The chunks each loaded document gave (``<state_prefix>/<collection>/chunks/<id>.parquet``,
text and provenance without vectors) are kept too, written before the document's state:
with the embedding cache they are all it takes to rebuild the collection without Weaviate.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from twin_lib.domain import Chunk
from twin_lib.domain.records import records_to_table, table_to_records
from twin_lib.features.sync import SyncedDocument
from twin_lib.settings import FeaturesSettings, MinioSettings, WeaviateSettings
from twin_lib.storage import ObjectNotFoundError, ObjectStore, StorageError, VectorStore

logger = logging.getLogger(__name__)

_READERS = 8


class EmbeddingMismatchError(StorageError):
    """A collection holds vectors of another embedding model than the settings name."""


class CollectionBinding(BaseModel):
    """The embedding identity a collection is bound to, and the last feature version loaded."""

    collection: str
    embedding: str
    feature_version: str


class FeatureState:
    """Per-document sync state and the embedding binding of one collection."""

    def __init__(self, objects: ObjectStore, bucket: str, prefix: str, collection: str) -> None:
        self.objects = objects
        self.bucket = bucket
        self.collection = collection
        self._root = f"{prefix}/{collection}"

    def _document_key(self, document_id: str) -> str:
        return f"{self._root}/documents/{document_id}.json"

    def _chunks_key(self, document_id: str) -> str:
        return f"{self._root}/chunks/{document_id}.parquet"

    def read(self) -> dict[str, SyncedDocument]:
        """Every recorded document; read in parallel since there is one object per document."""
        keys = [info.key for info in self.objects.list(self.bucket, f"{self._root}/documents/")]
        with ThreadPoolExecutor(_READERS) as pool:
            entries = list(pool.map(lambda key: self.objects.get_json(self.bucket, key), keys))
        return {
            key.rsplit("/", 1)[1].removesuffix(".json"): SyncedDocument.model_validate(entry)
            for key, entry in zip(keys, entries, strict=True)
        }

    def record(self, entries: dict[str, SyncedDocument]) -> None:
        with ThreadPoolExecutor(_READERS) as pool:
            list(
                pool.map(
                    lambda item: self.objects.put_json(
                        self.bucket, self._document_key(item[0]), item[1].model_dump()
                    ),
                    entries.items(),
                )
            )

    def forget(self, document_ids: list[str]) -> None:
        for document_id in document_ids:
            self.objects.delete(self.bucket, self._document_key(document_id))
            self.objects.delete(self.bucket, self._chunks_key(document_id))

    def record_chunks(self, chunks: dict[str, list[Chunk]]) -> None:
        """Keep each document's loaded chunks (one object per document, like its state)."""
        with ThreadPoolExecutor(_READERS) as pool:
            list(
                pool.map(
                    lambda item: self.objects.put_parquet(
                        self.bucket, self._chunks_key(item[0]), records_to_table(item[1], Chunk)
                    ),
                    chunks.items(),
                )
            )

    def read_chunks(self, document_ids: list[str]) -> dict[str, list[Chunk]]:
        """The kept chunks of these documents; a document without any kept is absent."""
        kept = {info.key for info in self.objects.list(self.bucket, f"{self._root}/chunks/")}
        present = [doc for doc in document_ids if self._chunks_key(doc) in kept]
        with ThreadPoolExecutor(_READERS) as pool:
            tables = list(
                pool.map(
                    lambda doc: self.objects.get_parquet(self.bucket, self._chunks_key(doc)),
                    present,
                )
            )
        return {
            doc: table_to_records(table, Chunk) for doc, table in zip(present, tables, strict=True)
        }

    def binding(self) -> CollectionBinding | None:
        try:
            return CollectionBinding.model_validate(
                self.objects.get_json(self.bucket, f"{self._root}/collection.json")
            )
        except ObjectNotFoundError:
            return None

    def check_binding(self, embedding: str) -> None:
        """Refuse an embedding identity other than the one the collection is bound to."""
        bound = self.binding()
        if bound is not None and bound.embedding != embedding:
            raise EmbeddingMismatchError(
                f"Weaviate collection {self.collection} holds vectors of {bound.embedding}, "
                f"but the settings embed with {embedding}; vectors of two models cannot share "
                "a collection: set TWIN_WEAVIATE__COLLECTION to a new collection name (or set "
                "the embedding settings back)"
            )

    def bind(self, embedding: str, feature_version: str) -> None:
        self.check_binding(embedding)
        binding = CollectionBinding(
            collection=self.collection, embedding=embedding, feature_version=feature_version
        )
        self.objects.put_json(self.bucket, f"{self._root}/collection.json", binding.model_dump())


def collection_feature_version(
    weaviate: WeaviateSettings,
    minio: MinioSettings,
    collection: str,
    *,
    prefix: str = FeaturesSettings().state_prefix,
) -> str | None:
    """The feature version of the chunks last loaded into ``collection``; None if it has none.

    Serving compares it with the feature version of its own settings, so queries are cleaned
    and embedded exactly like the chunks they are compared with.
    """
    with VectorStore(weaviate) as store:
        if not store.collection_exists(collection):
            return None
    binding = FeatureState(ObjectStore(minio), minio.features_bucket, prefix, collection).binding()
    return binding.feature_version if binding else None
