"""The feature steps after validation: plan, clean, chunk, embed, load into Weaviate.

``plan_sync`` compares validated documents with what the feature store holds (the rules are
in ``twin_lib.features.sync``), so only new or changed documents, or all of them after a
change of the feature version, are cleaned, chunked and embedded: a re-run over unchanged
sources embeds nothing and writes nothing. ``load_features`` writes a changed document's
new chunks before deleting its stale ones, so it is never missing from search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from pydantic import BaseModel

from twin_lib.domain import Chunk, CleanedDocument, EmbeddedChunk, RawDocument
from twin_lib.domain.records import read_records, write_records
from twin_lib.features.chunking import chunk_document
from twin_lib.features.cleaning import clean_document
from twin_lib.features.embedding import attach_vectors, embed_slices, load_model, model_window
from twin_lib.features.sync import StoredVersions, SyncPlan, decide
from twin_lib.features.version import embedding_identity, encoder_identity, feature_version
from twin_lib.hashing import sha256_text
from twin_lib.settings import FeaturesSettings, MinioSettings, WeaviateSettings
from twin_lib.steps.embedding_cache import EmbeddingCache
from twin_lib.steps.feature_state import FeatureState
from twin_lib.steps.quality import validate_chunks
from twin_lib.storage import (
    CollectionSchema,
    ObjectStore,
    StorageError,
    VectorRecord,
    VectorStore,
    chunk_collection_schema,
)
from twin_lib.storage.vector_store import record_uuid

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


def _state(
    objects: ObjectStore,
    minio: MinioSettings,
    features: FeaturesSettings,
    weaviate: WeaviateSettings,
) -> FeatureState:
    objects.ensure_buckets(minio.features_bucket)
    return FeatureState(objects, minio.features_bucket, features.state_prefix, weaviate.collection)


def stored_versions(store: VectorStore, schema: CollectionSchema) -> StoredVersions:
    """document id -> (content hash, feature version) of its chunks, read from Weaviate itself."""
    versions: dict[str, set[tuple[str, str]]] = {}
    for row in store.iter_properties(schema, ["document_id", "content_hash", "feature_version"]):
        versions.setdefault(row["document_id"], set()).add(
            (row["content_hash"], row.get("feature_version") or "")
        )
    return versions


def plan_sync(
    crawled_path: Path,
    valid_path: Path,
    complete_origins: Sequence[str],
    *,
    output: Path,
    plan_path: Path,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    features: FeaturesSettings,
) -> SyncPlan:
    """Write the documents that need (re)loading to ``output`` and the plan to ``plan_path``.

    Only origins in ``complete_origins`` (complete listings of authoritative sources) may
    delete the documents they no longer contain.
    """
    valid = read_records(valid_path, RawDocument)
    state = _state(ObjectStore(minio), minio, features, weaviate)
    state.check_binding(embedding_identity(features.embedding))
    schema = chunk_collection_schema(weaviate.collection, features.embedding.dimensions)
    with VectorStore(weaviate) as store:
        store.ensure_collection(schema)
        stored = stored_versions(store, schema)
    plan = decide(
        read_records(crawled_path, RawDocument),
        valid,
        complete_origins,
        stored,
        state.read(),
        feature_version(features),
    )
    wanted = set(plan.upsert)
    write_records(output, [d for d in valid if d.document_id in wanted], RawDocument)
    plan_path.write_text(plan.model_dump_json(), encoding="utf-8")
    logger.info(
        "plan: %d to load, %d unchanged, %d to delete (feature version %s)",
        len(plan.upsert),
        plan.unchanged,
        len(plan.delete),
        plan.feature_version,
    )
    return plan


def clean_documents(input_path: Path, *, output: Path) -> int:
    documents = read_records(input_path, RawDocument)
    return write_records(output, [clean_document(d) for d in documents], CleanedDocument)


def _model(features: FeaturesSettings) -> SentenceTransformer:
    embedding = features.embedding
    return load_model(embedding.model, embedding.device, embedding.revision)


def chunk_documents(input_path: Path, *, output: Path, features: FeaturesSettings) -> int:
    """Chunk with the embedding model's tokenizer, sized per category, tagged with the version."""
    documents = read_records(input_path, CleanedDocument)
    if not documents:  # an unchanged re-run: no reason to load the model in this pod
        return write_records(output, [], Chunk)
    model = _model(features)
    window = model_window(model)
    version = feature_version(features)
    chunks = [
        chunk
        for document in documents
        for chunk in chunk_document(
            document,
            features.chunking.for_category(document.category),
            model.tokenizer,
            window,
            max_chars=features.chunking.max_chunk_chars,
            feature_version=version,
        )
    ]
    logger.info("%d documents -> %d chunks", len(documents), len(chunks))
    return write_records(output, chunks, Chunk)


def _check_dimension(model: SentenceTransformer, features: FeaturesSettings) -> None:
    dimension = model.get_embedding_dimension()
    if dimension != features.embedding.dimensions:
        raise ValueError(
            f"model {features.embedding.model} makes {dimension}-d vectors but "
            f"features.embedding.dimensions is {features.embedding.dimensions}; set it to "
            f"{dimension} and TWIN_WEAVIATE__COLLECTION to a new collection"
        )


def _embedding_cache(minio: MinioSettings, features: FeaturesSettings) -> EmbeddingCache:
    objects = ObjectStore(minio)
    objects.ensure_buckets(minio.features_bucket)
    return EmbeddingCache(
        objects,
        minio.features_bucket,
        features.embedding.cache_prefix,
        encoder_identity(features.embedding),
    )


def vectors_for(
    chunks: Sequence[Chunk], features: FeaturesSettings, cache: EmbeddingCache
) -> tuple[list[list[float]], dict[str, float]]:
    """Each chunk's vector: from the cache where it has one, else encoded and then cached.

    Texts are encoded once however many chunks share them, and each finished slice is
    cached before the next starts, so a run killed half-way is resumed, not redone. The
    model is not even loaded when every vector is cached.
    """
    hashes = [sha256_text(chunk.text) for chunk in chunks]
    vectors = cache.lookup(hashes)
    hits = sum(1 for h in hashes if h in vectors)
    texts = dict(zip(hashes, (chunk.text for chunk in chunks), strict=True))
    pending = [h for h in texts if h not in vectors]
    if pending:
        model = _model(features)
        _check_dimension(model, features)
        for offset, part in embed_slices([texts[h] for h in pending], model, features.embedding):
            fresh = dict(zip(pending[offset : offset + len(part)], part, strict=True))
            cache.store(fresh)
            vectors.update(fresh)
    logger.info(
        "embedding cache: %d of %d chunks cached, %d texts encoded (encoder %s)",
        hits,
        len(chunks),
        len(pending),
        cache.encoder,
    )
    metrics = {
        "embedding_cache_hits": float(hits),
        "embedding_cache_misses": float(len(chunks) - hits),
        "texts_encoded": float(len(pending)),
    }
    return [vectors[h] for h in hashes], metrics


def embed_chunk_file(
    input_path: Path, *, output: Path, features: FeaturesSettings, minio: MinioSettings
) -> dict[str, float]:
    """Embed every chunk, through the embedding cache; returns the cache's hits and misses.

    Refuses chunks made for another feature version than this process embeds with (steps
    on machines that resolve ``precision: auto`` differently) and a model whose vector
    size differs from the settings.
    """
    chunks = read_records(input_path, Chunk)
    version = feature_version(features)
    others = sorted({c.feature_version for c in chunks} - {version})
    if others:
        raise ValueError(
            f"chunks in {input_path} were made as features {', '.join(others)} but this "
            f"process embeds as features {version} (encoder "
            f"{encoder_identity(features.embedding)}): the chunk and embed steps resolved "
            "different settings; set features.embedding.precision to bf16 or fp32 so every "
            "machine agrees"
        )
    vectors, metrics = vectors_for(chunks, features, _embedding_cache(minio, features))
    written = write_records(
        output, attach_vectors(chunks, vectors, features.embedding), EmbeddedChunk
    )
    return {"chunks_embedded": float(written), **metrics}


def validate_embedded_chunks(
    input_path: Path,
    *,
    output: Path,
    report_path: Path,
    features: FeaturesSettings,
    minio: MinioSettings,
) -> dict[str, float]:
    """Chunk validation bound to this model's window, the character cap and the vector size.

    The model is loaded only to learn its window; with no chunks there is nothing to bound.
    """
    has_chunks = pq.read_metadata(str(input_path)).num_rows > 0
    return validate_chunks(
        input_path,
        output=output,
        report_path=report_path,
        quality=features.quality,
        minio=minio,
        max_tokens=model_window(_model(features)) if has_chunks else 0,
        max_chars=features.chunking.max_chunk_chars,
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
            "origin": chunk.origin,
            "document_id": chunk.document_id,
            "chunk_index": chunk.chunk_index,
            "content_hash": chunk.content_hash,
            "feature_version": chunk.feature_version,
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
    """Write new chunks, then delete stale and removed ones, then record the state.

    In that order, a crash at any point leaves every document searchable, and the next run
    finishes the job: a document whose state was not recorded is planned again. A document
    whose chunks failed to write is left out of the state for the same reason; one whose
    chunks were all quarantined (or that yields none) is recorded with zero chunks and done.
    """
    plan = SyncPlan.model_validate_json(plan_path.read_text(encoding="utf-8"))
    chunks = read_records(chunks_path, EmbeddedChunk)
    schema = chunk_collection_schema(weaviate.collection, features.embedding.dimensions)
    state = _state(ObjectStore(minio), minio, features, weaviate)
    if plan.upsert or plan.delete:
        state.bind(embedding_identity(features.embedding), plan.feature_version)
    records = [_vector_record(c) for c in chunks]
    with VectorStore(weaviate) as store:
        store.ensure_collection(schema)
        report = store.upsert(schema, records)
        failed = {chunks[f.index].document_id for f in report.failures}
        loaded = [doc for doc in plan.upsert if doc not in failed]
        kept: dict[str, list[str]] = {doc: [] for doc in loaded}
        for chunk, record in zip(chunks, records, strict=True):
            if chunk.document_id in kept:
                kept[chunk.document_id].append(record_uuid(schema, record.properties))
        stale = sum(
            store.delete_where(schema, {"document_id": doc}, keep=ids) for doc, ids in kept.items()
        )
        removed = sum(store.delete_where(schema, {"document_id": doc}) for doc in plan.delete)
        total = store.count(schema)
    loaded_chunks: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        if chunk.document_id in kept:
            loaded_chunks.setdefault(chunk.document_id, []).append(
                Chunk.model_validate(chunk.model_dump(exclude={"embedding", "embedding_model"}))
            )
    state.record_chunks(loaded_chunks)
    state.record(
        {
            doc: plan.current[doc].model_copy(update={"chunks": len(loaded_chunks.get(doc, []))})
            for doc in loaded
        }
    )
    state.forget(plan.delete)
    logger.info(
        "loaded %d chunks of %d documents, deleted %d stale and %d removed chunks, %d failed; "
        "collection holds %d",
        report.written,
        len(loaded),
        stale,
        removed,
        len(report.failures),
        total,
    )
    return {
        "chunks_written": float(report.written),
        "chunks_failed": float(len(report.failures)),
        "chunks_deleted": float(stale + removed),
        "documents_loaded": float(len(loaded)),
        "documents_deleted": float(len(plan.delete)),
        "documents_unchanged": float(plan.unchanged),
        "collection_size": float(total),
    }


class ForgottenSource(BaseModel):
    """What ``forget_source`` removed."""

    origin: str
    author: str
    documents: int
    chunks: int


def forget_source(
    origin: str,
    *,
    author: str,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    features: FeaturesSettings,
) -> ForgottenSource:
    """Delete every chunk and state entry of one source on purpose.

    The sync never deletes a whole source by itself (a source that is down looks the same as
    one that is gone); this is how a person says a source is gone for good.
    """
    state = _state(ObjectStore(minio), minio, features, weaviate)
    recorded = state.read()
    documents = sorted(
        doc for doc, entry in recorded.items() if entry.origin == origin and entry.author == author
    )
    schema = chunk_collection_schema(weaviate.collection, features.embedding.dimensions)
    chunks = 0
    with VectorStore(weaviate) as store:
        if store.collection_exists(schema.name):
            store.ensure_collection(schema)  # collections of older versions lack `origin`
            chunks = store.delete_where(schema, {"origin": origin, "author": author})
            chunks += sum(store.delete_where(schema, {"document_id": doc}) for doc in documents)
    state.forget(documents)
    if not documents and not chunks:
        known = sorted({e.origin for e in recorded.values() if e.author == author})
        raise ValueError(
            f"no document of {author!r} comes from {origin!r} in collection "
            f"{weaviate.collection}; give the source exactly as it was crawled"
            + (f" (known sources: {', '.join(known)})" if known else "")
        )
    logger.info("forgot %s: %d documents, %d chunks", origin, len(documents), chunks)
    return ForgottenSource(origin=origin, author=author, documents=len(documents), chunks=chunks)


class RebuiltCollection(BaseModel):
    """What ``rebuild_collection`` wrote, and how many vectors it had to encode."""

    collection: str
    documents: int
    chunks: int
    metrics: dict[str, float]


def _kept_chunks(state: FeatureState, version: str) -> tuple[int, list[Chunk]]:
    """Every loaded document's kept chunks; refuses a state it cannot rebuild exactly."""
    entries = state.read()
    where = f"collection {state.collection} (bucket {state.bucket})"
    others = sorted(doc for doc, entry in entries.items() if entry.feature_version != version)
    if others:
        raise ValueError(
            f"{len(others)} documents of {where} were loaded as other features than these "
            f"settings' {version} (e.g. {others[0]}): rebuild with the feature settings they "
            "were loaded with, or run `twin features` over their sources"
        )
    with_chunks = sorted(doc for doc, entry in entries.items() if entry.chunks)
    kept = state.read_chunks(with_chunks)
    missing = [doc for doc in with_chunks if len(kept.get(doc, [])) != entries[doc].chunks]
    if missing:
        raise ValueError(
            f"{len(missing)} documents of {where} have no kept chunks (loaded before chunks "
            f"were kept, e.g. {missing[0]}): run `twin features` over their sources once, "
            "then rebuild"
        )
    return len(entries), [chunk for doc in with_chunks for chunk in kept[doc]]


def rebuild_collection(
    *, minio: MinioSettings, weaviate: WeaviateSettings, features: FeaturesSettings
) -> RebuiltCollection:
    """Recreate a Weaviate collection from MinIO alone: kept chunks and cached vectors.

    For a Weaviate that lost its data or was replaced. Everything is read (and any vector
    missing from the cache encoded) before the collection is dropped and written again,
    so a refused or failed read leaves the collection as it was.
    """
    state = _state(ObjectStore(minio), minio, features, weaviate)
    binding = state.binding()
    if binding is None:
        raise ValueError(
            f"collection {weaviate.collection} has no feature state in bucket "
            f"{minio.features_bucket} (nothing was ever loaded into it): run `twin features`"
        )
    state.check_binding(embedding_identity(features.embedding))
    documents, chunks = _kept_chunks(state, feature_version(features))
    vectors, metrics = vectors_for(chunks, features, _embedding_cache(minio, features))
    records = [_vector_record(c) for c in attach_vectors(chunks, vectors, features.embedding)]
    schema = chunk_collection_schema(weaviate.collection, features.embedding.dimensions)
    with VectorStore(weaviate) as store:
        if store.collection_exists(schema.name):
            store.drop_collection(schema.name)
        store.ensure_collection(schema)
        report = store.upsert(schema, records)
    if report.failures:
        raise StorageError(
            f"{len(report.failures)} of {len(records)} chunks were refused by Weaviate while "
            f"rebuilding {weaviate.collection} (first: {report.failures[0].message}); "
            "run the rebuild again"
        )
    logger.info(
        "rebuilt %s: %d documents, %d chunks, %d vectors encoded",
        weaviate.collection,
        documents,
        len(records),
        int(metrics["texts_encoded"]),
    )
    return RebuiltCollection(
        collection=weaviate.collection, documents=documents, chunks=len(records), metrics=metrics
    )
