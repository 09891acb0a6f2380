"""Weaviate adapter: the feature store for chunks, their embeddings and provenance.

Collections are declared (``CollectionSchema``) and migrated forward by adding missing
properties. Object ids are derived from the schema's identity properties, so upserting the
same chunks twice leaves one copy, and a crashed import can simply be re-run. Vectors are
always brought by the caller (no server-side vectorizer), which keeps the embedding model a
project decision, identical at indexing and query time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Self

import weaviate
from pydantic import BaseModel, Field
from weaviate.classes.aggregate import GroupByAggregate
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections import Collection
from weaviate.collections.classes.data import DataObject
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateQueryError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)

from twin_lib.hashing import content_uuid
from twin_lib.settings import WeaviateSettings
from twin_lib.storage.errors import StorageError
from twin_lib.storage.retry import RetryPolicy

log = logging.getLogger(__name__)


PropertyType = Literal["text", "int", "number", "boolean", "date", "text[]"]
FilterValue = str | int | float | bool | list[str] | list[int]

_DATA_TYPES: dict[str, DataType] = {
    "text": DataType.TEXT,
    "int": DataType.INT,
    "number": DataType.NUMBER,
    "boolean": DataType.BOOL,
    "date": DataType.DATE,
    "text[]": DataType.TEXT_ARRAY,
}
_DISTANCES = {
    "cosine": VectorDistances.COSINE,
    "dot": VectorDistances.DOT,
    "l2-squared": VectorDistances.L2_SQUARED,
}
_DIMENSIONS_TAG = "dimensions="


class PropertySpec(BaseModel):
    name: str
    data_type: PropertyType
    searchable: bool = Field(default=False, description="part of the BM25 (keyword) index")
    filterable: bool = True


class CollectionSchema(BaseModel):
    """A collection as the platform declares it; ``identity`` makes object ids deterministic."""

    name: str
    dimensions: int = Field(gt=0)
    distance: Literal["cosine", "dot", "l2-squared"] = "cosine"
    properties: list[PropertySpec]
    identity: list[str] = Field(min_length=1)
    description: str = ""

    def property_names(self) -> set[str]:
        return {p.name for p in self.properties}

    def searchable(self) -> list[str]:
        return [p.name for p in self.properties if p.searchable]


def chunk_collection_schema(name: str, dimensions: int) -> CollectionSchema:
    """The feature store's chunk collection: text, provenance, and lineage to a snapshot."""
    return CollectionSchema(
        name=name,
        dimensions=dimensions,
        description="Chunks of an author's writing with their embeddings and provenance",
        properties=[
            PropertySpec(name="content", data_type="text", searchable=True, filterable=False),
            PropertySpec(name="title", data_type="text", searchable=True),
            PropertySpec(name="author", data_type="text"),
            PropertySpec(name="category", data_type="text"),
            PropertySpec(name="source_url", data_type="text"),
            PropertySpec(name="document_id", data_type="text"),
            PropertySpec(name="chunk_index", data_type="int"),
            PropertySpec(name="content_hash", data_type="text"),
            PropertySpec(name="snapshot_id", data_type="text"),
            PropertySpec(name="origin", data_type="text"),
            PropertySpec(name="feature_version", data_type="text"),
        ],
        # A new feature version over the same text overwrites chunks in place (one object
        # at a time, never missing); the sync then deletes the indexes it no longer has.
        identity=["document_id", "chunk_index", "content_hash"],
    )


class VectorRecord(BaseModel):
    properties: dict[str, Any]
    vector: list[float]


class UpsertFailure(BaseModel):
    uuid: str
    index: int
    message: str


class UpsertReport(BaseModel):
    attempted: int = 0
    written: int = 0
    failures: list[UpsertFailure] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class SearchHit(BaseModel):
    uuid: str
    properties: dict[str, Any]
    distance: float | None = None
    score: float | None = None
    vector: list[float] | None = Field(default=None, description="when asked for")


def record_uuid(schema: CollectionSchema, properties: dict[str, Any]) -> str:
    missing = [name for name in schema.identity if properties.get(name) in (None, "")]
    if missing:
        raise ValueError(
            f"record for collection {schema.name} lacks identity properties {missing}; "
            f"every record needs {schema.identity} to get a stable id"
        )
    return content_uuid(schema.name, *(str(properties[name]) for name in schema.identity))


def _where(filters: dict[str, FilterValue] | None) -> Any:
    if not filters:
        return None
    clauses = [
        Filter.by_property(name).contains_any(value)
        if isinstance(value, list)
        else Filter.by_property(name).equal(value)
        for name, value in filters.items()
    ]
    return clauses[0] if len(clauses) == 1 else Filter.all_of(clauses)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, UnexpectedStatusCodeError):
        return error.status_code >= 500
    if isinstance(error, WeaviateQueryError):
        return "UNAVAILABLE" in str(error) or "DEADLINE_EXCEEDED" in str(error)
    return isinstance(
        error, WeaviateConnectionError | WeaviateGRPCUnavailableError | WeaviateTimeoutError
    )


def _is_unreachable(error: BaseException) -> bool:
    if isinstance(error, WeaviateQueryError):
        return "UNAVAILABLE" in str(error)
    return isinstance(
        error, WeaviateConnectionError | WeaviateStartUpError | WeaviateGRPCUnavailableError
    )


class VectorStore:
    """One open connection to Weaviate; use as a context manager or call ``close()``."""

    def __init__(
        self, settings: WeaviateSettings, *, attempts: int = 4, batch_size: int = 500
    ) -> None:
        self.settings = settings
        self._call = RetryPolicy(
            service="Weaviate",
            endpoint=settings.endpoint_label,
            is_transient=_is_transient,
            is_unreachable=_is_unreachable,
            attempts=attempts,
        ).call
        self.batch_size = batch_size
        self._client: weaviate.WeaviateClient | None = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def connect(self) -> weaviate.WeaviateClient:
        if self._client is None:
            key = self.settings.api_key
            timeout = self.settings.timeout_s
            self._client = self._call(
                lambda: weaviate.connect_to_custom(
                    http_host=self.settings.http_host,
                    http_port=self.settings.http_port,
                    http_secure=self.settings.secure,
                    grpc_host=self.settings.grpc_host,
                    grpc_port=self.settings.grpc_port,
                    grpc_secure=self.settings.secure,
                    auth_credentials=Auth.api_key(key.get_secret_value()) if key else None,
                    additional_config=AdditionalConfig(
                        timeout=Timeout(init=min(timeout, 10), query=timeout, insert=timeout * 4)
                    ),
                )
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def server_version(self) -> str:
        return str(self._call(lambda: self.connect().get_meta().get("version", "unknown")))

    def _collection(self, schema: CollectionSchema) -> Collection:
        return self.connect().collections.get(schema.name)

    def ensure_collection(self, schema: CollectionSchema) -> list[str]:
        """Create the collection or migrate it forward; returns the properties added.

        Existing properties with another type, or another vector size, cannot be migrated
        in place: that is reported as an error that names the setting for a new collection.
        """
        client = self.connect()
        if not self._call(lambda: client.collections.exists(schema.name)):
            self._call(
                lambda: client.collections.create(
                    name=schema.name,
                    description=f"{schema.description} ({_DIMENSIONS_TAG}{schema.dimensions})",
                    properties=[_to_property(p) for p in schema.properties],
                    vector_config=Configure.Vectors.self_provided(
                        vector_index_config=Configure.VectorIndex.hnsw(
                            distance_metric=_DISTANCES[schema.distance]
                        )
                    ),
                    inverted_index_config=Configure.inverted_index(index_property_length=False),
                )
            )
            log.info(
                "created collection",
                extra={"collection": schema.name, "dimensions": schema.dimensions},
            )
            return [p.name for p in schema.properties]
        config = self._call(lambda: client.collections.get(schema.name).config.get())
        declared_dims = _dimensions_in(config.description)
        if declared_dims is not None and declared_dims != schema.dimensions:
            raise StorageError(
                f"collection {schema.name} holds {declared_dims}-d vectors but the schema "
                f"declares {schema.dimensions}: a different embedding model needs a new "
                "collection: set TWIN_WEAVIATE__COLLECTION to a new name"
            )
        existing = {p.name: p.data_type for p in config.properties}
        added = []
        for spec in schema.properties:
            wanted = _DATA_TYPES[spec.data_type]
            if spec.name not in existing:
                self._call(
                    lambda s=spec: client.collections.get(schema.name).config.add_property(
                        _to_property(s)
                    )
                )
                added.append(spec.name)
            elif existing[spec.name] != wanted:
                raise StorageError(
                    f"property {schema.name}.{spec.name} is {existing[spec.name].value} in "
                    f"Weaviate but declared {wanted.value}; load into a new collection: set "
                    "TWIN_WEAVIATE__COLLECTION to a new name"
                )
        if added:
            log.info("migrated collection", extra={"collection": schema.name, "added": added})
        return added

    def collection_exists(self, name: str) -> bool:
        return bool(self._call(lambda: self.connect().collections.exists(name)))

    def drop_collection(self, name: str) -> None:
        self._call(lambda: self.connect().collections.delete(name))

    def upsert(self, schema: CollectionSchema, records: Sequence[VectorRecord]) -> UpsertReport:
        """Insert or overwrite records by their content-derived id; failures are per object."""
        report = UpsertReport(attempted=len(records))
        collection = self._collection(schema)
        valid: list[tuple[int, DataObject]] = []
        for index, record in enumerate(records):
            try:
                uuid = record_uuid(schema, record.properties)
            except ValueError as error:
                report.failures.append(UpsertFailure(uuid="", index=index, message=str(error)))
                continue
            problem = _vector_problem(record.vector, schema.dimensions)
            if problem:
                report.failures.append(UpsertFailure(uuid=uuid, index=index, message=problem))
                continue
            valid.append(
                (index, DataObject(properties=record.properties, uuid=uuid, vector=record.vector))
            )
        for start in range(0, len(valid), self.batch_size):
            batch = valid[start : start + self.batch_size]
            result = self._call(lambda b=batch: collection.data.insert_many([o for _, o in b]))
            for position, error in result.errors.items():
                index, obj = batch[position]
                report.failures.append(
                    UpsertFailure(uuid=str(obj.uuid), index=index, message=error.message)
                )
            report.written += len(batch) - len(result.errors)
        if report.failures:
            log.warning(
                "upsert had failures",
                extra={
                    "collection": schema.name,
                    "failed": len(report.failures),
                    "first": report.failures[0].message,
                },
            )
        return report

    def delete_where(
        self,
        schema: CollectionSchema,
        filters: dict[str, FilterValue],
        *,
        keep: Sequence[str] = (),
    ) -> int:
        """Delete every object matching all ``filters`` except those whose id is in ``keep``.

        ``keep`` lets a replaced document's new chunks be written first and its stale ones
        deleted after, so the document is never missing from search.
        """
        if not filters:
            raise ValueError("delete_where needs at least one filter; refusing to delete all")
        collection = self._collection(schema)
        where = _where(filters)
        if keep:
            where = Filter.all_of([where, Filter.by_id().contains_none(list(keep))])
        result = self._call(lambda: collection.data.delete_many(where=where))
        return int(result.successful)

    def count(self, schema: CollectionSchema, filters: dict[str, FilterValue] | None = None) -> int:
        collection = self._collection(schema)
        result = self._call(
            lambda: collection.aggregate.over_all(total_count=True, filters=_where(filters))
        )
        return int(result.total_count or 0)

    def iter_properties(self, schema: CollectionSchema, names: list[str]) -> Iterator[dict]:
        """Every object's selected properties (for reconciliation), paged by the client."""
        collection = self._collection(schema)
        for obj in collection.iterator(return_properties=names):
            yield {"uuid": str(obj.uuid), **obj.properties}

    def near_vector(
        self,
        schema: CollectionSchema,
        vector: Sequence[float],
        *,
        limit: int = 10,
        filters: dict[str, FilterValue] | None = None,
    ) -> list[SearchHit]:
        collection = self._collection(schema)
        result = self._call(
            lambda: collection.query.near_vector(
                near_vector=list(vector),
                limit=limit,
                filters=_where(filters),
                return_metadata=MetadataQuery(distance=True),
            )
        )
        return [
            SearchHit(uuid=str(o.uuid), properties=dict(o.properties), distance=o.metadata.distance)
            for o in result.objects
        ]

    def hybrid(
        self,
        schema: CollectionSchema,
        query: str,
        vector: Sequence[float] | None,
        *,
        alpha: float = 0.5,
        limit: int = 10,
        filters: dict[str, FilterValue] | None = None,
        include_vector: bool = False,
    ) -> list[SearchHit]:
        """BM25 over the searchable properties fused with vector similarity.

        ``alpha`` = 1 is pure vector search, 0 pure keyword search. ``include_vector``
        returns each hit's stored vector, so a reranker need not embed the hits again.
        """
        collection = self._collection(schema)
        result = self._call(
            lambda: collection.query.hybrid(
                query=query,
                vector=list(vector) if vector is not None else None,
                alpha=alpha,
                limit=limit,
                filters=_where(filters),
                query_properties=schema.searchable(),
                return_metadata=MetadataQuery(score=True),
                include_vector=include_vector,
            )
        )
        return [
            SearchHit(
                uuid=str(o.uuid),
                properties=dict(o.properties),
                score=o.metadata.score,
                vector=_single_vector(o.vector) if include_vector else None,
            )
            for o in result.objects
        ]

    def value_counts(self, schema: CollectionSchema, name: str) -> dict[str, int]:
        """How many objects hold each value of the filterable property ``name``."""
        collection = self._collection(schema)
        result = self._call(
            lambda: collection.aggregate.over_all(
                group_by=GroupByAggregate(prop=name), total_count=True
            )
        )
        return {str(group.grouped_by.value): int(group.total_count or 0) for group in result.groups}


def _to_property(spec: PropertySpec) -> Property:
    text_like = spec.data_type in {"text", "text[]"}
    return Property(
        name=spec.name,
        data_type=_DATA_TYPES[spec.data_type],
        index_searchable=spec.searchable if text_like else None,
        index_filterable=spec.filterable,
        tokenization=(Tokenization.WORD if spec.searchable else Tokenization.FIELD)
        if text_like
        else None,
    )


def _single_vector(vectors: Any) -> list[float] | None:
    """The collection's one (unnamed, "default") vector from the client's dict of vectors."""
    if isinstance(vectors, dict):
        vectors = next(iter(vectors.values()), None)
    return [float(v) for v in vectors] if vectors is not None else None


def _dimensions_in(description: str | None) -> int | None:
    if not description or _DIMENSIONS_TAG not in description:
        return None
    digits = description.split(_DIMENSIONS_TAG, 1)[1].rstrip(")").strip()
    return int(digits) if digits.isdigit() else None


def _vector_problem(vector: Sequence[float], dimensions: int) -> str | None:
    if len(vector) != dimensions:
        return f"vector has {len(vector)} dimensions, the collection expects {dimensions}"
    if not all(math.isfinite(v) for v in vector):
        return "vector contains NaN or infinite values"
    return None
