"""The feature steps after validation: plan, clean, chunk, embed, load into Weaviate.

``plan_sync`` compares validated documents with what the feature store holds, so only new
or changed documents are cleaned, chunked and embedded: a re-run over unchanged sources
embeds nothing and writes nothing. Documents that vanished from a source that was crawled
successfully are deleted; a source that failed to crawl keeps its documents.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from twin_lib.domain import Chunk, CleanedDocument, EmbeddedChunk, RawDocument
from twin_lib.domain.records import read_records, write_records
from twin_lib.features.chunking import chunk_document
from twin_lib.features.cleaning import clean_document
from twin_lib.features.embedding import embed_chunks, load_model, model_window
from twin_lib.settings import FeaturesSettings, MinioSettings, WeaviateSettings
from twin_lib.steps.quality import validate_chunks
from twin_lib.storage import (
    CollectionSchema,
    ObjectNotFoundError,
    ObjectStore,
    VectorRecord,
    VectorStore,
    chunk_collection_schema,
)

logger = logging.getLogger(__name__)


class SyncedDocument(BaseModel):
    """What the feature store holds for one document, and where it was crawled from."""

    origin: str
    content_hash: str


class SyncPlan(BaseModel):
    """Which documents to (re)load, which to delete, and the state to record afterwards."""

    upsert: list[str]
    delete: list[str]
    unchanged: int
    current: dict[str, SyncedDocument]


def _state_key(features: FeaturesSettings, weaviate: WeaviateSettings) -> str:
    return f"{features.state_prefix}/{weaviate.collection}.json"


def read_sync_state(objects: ObjectStore, bucket: str, key: str) -> dict[str, SyncedDocument]:
    try:
        raw = objects.get_json(bucket, key)
    except ObjectNotFoundError:
        return {}
    return {doc: SyncedDocument.model_validate(entry) for doc, entry in raw.items()}


def stored_hashes(store: VectorStore, schema: CollectionSchema) -> dict[str, set[str]]:
    """document id -> content hashes of its chunks, read from Weaviate itself (the truth)."""
    hashes: dict[str, set[str]] = {}
    for row in store.iter_properties(schema, ["document_id", "content_hash"]):
        hashes.setdefault(row["document_id"], set()).add(row["content_hash"])
    return hashes


def decide(
    crawled: Sequence[RawDocument],
    valid: Sequence[RawDocument],
    crawled_origins: Sequence[str],
    stored: dict[str, set[str]],
    state: dict[str, SyncedDocument],
) -> SyncPlan:
    """Pure planning: which documents to (re)load and which to delete.

    A document is up to date only when the store holds exactly its current hash *and* the
    recorded state, written after a successful load, says so. The store alone cannot tell a
    complete document from one whose load died half-way (its chunks share the document's
    hash), and the state alone cannot tell that the collection was emptied behind its back.
    """
    upsert = [
        d.document_id
        for d in valid
        if stored.get(d.document_id) != {d.content_hash}
        or (entry := state.get(d.document_id)) is None
        or entry.content_hash != d.content_hash
    ]
    crawled_ids = {d.document_id for d in crawled}
    origins = set(crawled_origins)
    delete = sorted(
        doc for doc, entry in state.items() if entry.origin in origins and doc not in crawled_ids
    )
    return SyncPlan(
        upsert=upsert,
        delete=delete,
        unchanged=len(valid) - len(upsert),
        current={
            d.document_id: SyncedDocument(origin=d.origin, content_hash=d.content_hash)
            for d in valid
        },
    )


def plan_sync(
    crawled_path: Path,
    valid_path: Path,
    crawled_origins: Sequence[str],
    *,
    output: Path,
    plan_path: Path,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    features: FeaturesSettings,
) -> SyncPlan:
    """Write the documents that need (re)loading to ``output`` and the plan to ``plan_path``."""
    valid = read_records(valid_path, RawDocument)
    objects = ObjectStore(minio)
    objects.ensure_buckets(minio.features_bucket)
    schema = chunk_collection_schema(weaviate.collection, features.embedding.dimensions)
    with VectorStore(weaviate) as store:
        store.ensure_collection(schema)
        stored = stored_hashes(store, schema)
    state = read_sync_state(objects, minio.features_bucket, _state_key(features, weaviate))
    plan = decide(read_records(crawled_path, RawDocument), valid, crawled_origins, stored, state)
    wanted = set(plan.upsert)
    write_records(output, [d for d in valid if d.document_id in wanted], RawDocument)
    plan_path.write_text(plan.model_dump_json(), encoding="utf-8")
    logger.info(
        "plan: %d to load, %d unchanged, %d to delete",
        len(plan.upsert),
        plan.unchanged,
        len(plan.delete),
    )
    return plan


def clean_documents(input_path: Path, *, output: Path) -> int:
    documents = read_records(input_path, RawDocument)
    return write_records(output, [clean_document(d) for d in documents], CleanedDocument)


def chunk_documents(input_path: Path, *, output: Path, features: FeaturesSettings) -> int:
    """Chunk with the embedding model's tokenizer, sized per category."""
    documents = read_records(input_path, CleanedDocument)
    if not documents:  # an unchanged re-run: no reason to load the model in this pod
        return write_records(output, [], Chunk)
    model = load_model(features.embedding.model, features.embedding.device)
    window = model_window(model)
    chunks = [
        chunk
        for document in documents
        for chunk in chunk_document(
            document, features.chunking.for_category(document.category), model.tokenizer, window
        )
    ]
    logger.info("%d documents -> %d chunks", len(documents), len(chunks))
    return write_records(output, chunks, Chunk)


def embed_chunk_file(input_path: Path, *, output: Path, features: FeaturesSettings) -> int:
    """Embed every chunk; refuses a model whose vector size differs from the settings."""
    chunks = read_records(input_path, Chunk)
    if not chunks:
        return write_records(output, [], EmbeddedChunk)
    model = load_model(features.embedding.model, features.embedding.device)
    dimension = model.get_embedding_dimension()
    if dimension != features.embedding.dimensions:
        raise ValueError(
            f"model {features.embedding.model} makes {dimension}-d vectors but "
            f"features.embedding.dimensions is {features.embedding.dimensions}; set it to "
            f"{dimension} (and use a new Weaviate collection)"
        )
    return write_records(output, embed_chunks(chunks, model, features.embedding), EmbeddedChunk)


def validate_embedded_chunks(
    input_path: Path,
    *,
    output: Path,
    report_path: Path,
    features: FeaturesSettings,
    minio: MinioSettings,
) -> dict[str, float]:
    """Chunk validation bound to this model's window and the configured vector size.

    The model is loaded only to learn its window; with no chunks there is nothing to bound.
    """
    has_chunks = pq.read_metadata(str(input_path)).num_rows > 0
    model = load_model(features.embedding.model, features.embedding.device) if has_chunks else None
    return validate_chunks(
        input_path,
        output=output,
        report_path=report_path,
        quality=features.quality,
        minio=minio,
        max_tokens=model_window(model) if model is not None else 0,
        dimension=features.embedding.dimensions,
    )


def _vector_record(chunk: EmbeddedChunk) -> VectorRecord:
    return VectorRecord(
        vector=chunk.embedding,
        properties={
            "content": chunk.text,
            "title": chunk.title,
            "author": chunk.author,
            "category": str(chunk.category),
            "source_url": chunk.source_url,
            "document_id": chunk.document_id,
            "chunk_index": chunk.chunk_index,
            "content_hash": chunk.content_hash,
            "snapshot_id": chunk.snapshot_id or "",
        },
    )


def load_features(
    chunks_path: Path,
    plan_path: Path,
    *,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    features: FeaturesSettings,
) -> dict[str, float]:
    """Replace changed documents' chunks, delete removed documents, record the new state.

    A document whose chunks failed to load is left out of the recorded state, so the next
    run sees it as changed and tries again.
    """
    plan = SyncPlan.model_validate_json(plan_path.read_text(encoding="utf-8"))
    chunks = read_records(chunks_path, EmbeddedChunk)
    schema = chunk_collection_schema(weaviate.collection, features.embedding.dimensions)
    objects = ObjectStore(minio)
    state_key = _state_key(features, weaviate)
    state = read_sync_state(objects, minio.features_bucket, state_key)
    with VectorStore(weaviate) as store:
        store.ensure_collection(schema)
        deleted = sum(
            store.delete_where(schema, {"document_id": d}) for d in [*plan.upsert, *plan.delete]
        )
        report = store.upsert(schema, [_vector_record(c) for c in chunks])
        total = store.count(schema)
    failed_docs = {chunks[f.index].document_id for f in report.failures}
    loaded = {c.document_id for c in chunks} - failed_docs
    unchanged = set(plan.current) - set(plan.upsert)
    for doc in plan.delete:
        state.pop(doc, None)
    state.update({doc: plan.current[doc] for doc in loaded | unchanged if doc in plan.current})
    objects.put_json(
        minio.features_bucket,
        state_key,
        {doc: entry.model_dump() for doc, entry in sorted(state.items())},
    )
    logger.info(
        "loaded %d chunks of %d documents, deleted %d old chunks, %d failed; collection holds %d",
        report.written,
        len(loaded),
        deleted,
        len(report.failures),
        total,
    )
    return {
        "chunks_written": float(report.written),
        "chunks_failed": float(len(report.failures)),
        "chunks_deleted": float(deleted),
        "documents_loaded": float(len(loaded)),
        "documents_deleted": float(len(plan.delete)),
        "documents_unchanged": float(plan.unchanged),
        "collection_size": float(total),
    }
