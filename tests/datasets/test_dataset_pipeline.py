"""Generator (b) end to end on the real stack: chunks in Weaviate -> validated snapshots in
MinIO -> read back with ``datasets.load_dataset`` -> lineage back to the source URLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.openai_server import scripted_openai_server
from twin_lib.settings import (
    DatasetSettings,
    OpenAIEndpointSettings,
    ResponderSettings,
    TwinSettings,
)
from twin_lib.steps.datasets import (
    build_instruction_dataset,
    build_preference_dataset,
    dataset_uris,
    download_dataset,
    read_author_chunks,
    read_dataset_lineage,
)
from twin_lib.storage import (
    ObjectStore,
    StorageError,
    VectorRecord,
    VectorStore,
    chunk_collection_schema,
)

pytestmark = pytest.mark.integration

RAW_SNAPSHOT = "raw-documents-0123456789abcdef"
REPOSTED = (
    "Bread teaches patience better than any book: the dough decides when it is ready, and the "
    "baker who hurries it eats a brick. I learned that in my grandmother's kitchen in Lyon."
)
DOCUMENTS = {
    "https://ada.example.org/rivers": [
        "Rivers carve valleys slowly, and the lesson they teach every walker is patience. A "
        "valley is a diary of floods: gravel bars, fallen alders, bends around hard hills.",
        "When I walk the bank at dawn I count herons instead of steps; the river keeps time "
        "for me, and the mist lifts exactly when the first kingfisher crosses the water.",
    ],
    "https://ada.example.org/bread": [
        REPOSTED,
        "Rye needs a sour starter and a cold night. The crumb of a good rye loaf is dense and "
        "moist, and it keeps a week if you wrap it in linen rather than plastic.",
    ],
    "https://ada.example.org/bridges": [
        "Bridges are promises in stone that two banks will keep talking. The old arch in our "
        "town has carried carts, tanks and bicycles, and it still hums in a strong wind.",
        "   ",
    ],
    "https://ada.example.org/notebook": [
        "My notebook is full of maps drawn from memory, all of them wrong in useful ways: "
        "they show what I noticed, which is a better guide than what was actually there.",
        REPOSTED,
    ],
}
OTHER_AUTHOR = ("https://bob.example.org/cars", "Cars are the best thing ever built by people.")


def _record(author: str, url: str, index: int, text: str, names: set[str]) -> VectorRecord:
    properties = {
        "content": text,
        "title": url.rsplit("/", 1)[-1].title(),
        "author": author,
        "category": "article",
        "source_url": url,
        "document_id": f"{author}:{url}",
        "chunk_index": index,
        "content_hash": f"{url}#{index}:{len(text)}",
        "snapshot_id": RAW_SNAPSHOT,
        "origin": url,
        "feature_version": "fv-test",
    }
    return VectorRecord(
        properties={k: v for k, v in properties.items() if k in names}, vector=[1.0, 0.0, 0.0, 0.0]
    )


def _load(store: VectorStore, collection: str, extra: dict[str, list[str]] | None = None) -> None:
    schema = chunk_collection_schema(collection, 4)
    store.ensure_collection(schema)
    names = schema.property_names()
    records = [
        _record("Ada", url, i, text, names)
        for url, texts in (extra or DOCUMENTS).items()
        for i, text in enumerate(texts)
    ]
    records.append(_record("Bob", OTHER_AUTHOR[0], 0, OTHER_AUTHOR[1], names))
    assert store.upsert(schema, records).ok


def _load_dataset(files: dict[str, Path]):
    from datasets import load_dataset

    return load_dataset("parquet", data_files={split: str(path) for split, path in files.items()})


def test_offline_instruction_and_preference_datasets_end_to_end(
    stack_settings: TwinSettings,
    object_store: ObjectStore,
    vector_store: VectorStore,
    unique_name: str,
    base_model: Path,
    tmp_path: Path,
):
    minio = stack_settings.minio
    weaviate = stack_settings.weaviate.model_copy(update={"collection": unique_name})
    _load(vector_store, unique_name)
    chunk_ids = {
        row["uuid"]: row["source_url"]
        for row in vector_store.iter_properties(
            chunk_collection_schema(unique_name, 4), ["source_url"]
        )
    }
    datasets = DatasetSettings(
        test_fraction=0.25,
        seed=5,
        # the tiny test model repeats newlines when greedy; seeded sampling gives it words
        responder=ResponderSettings(max_new_tokens=12, batch_size=4, do_sample=True, seed=3),
    )

    summary = build_instruction_dataset(
        "Ada",
        minio=minio,
        weaviate=weaviate,
        datasets=datasets,
        base_model=base_model,
        output_dir=tmp_path / "instruction",
    )
    sid = summary.snapshot_id
    assert summary.generator == "offline" and not summary.reused
    # 8 chunks of Ada: one re-posted duplicate and one empty chunk are quarantined
    assert summary.counts["train"] + summary.counts["test"] == 6
    assert summary.counts["test"] >= 1
    assert summary.quarantined == {"instruction_dedup": 1, "instruction_examples": 1}
    assert summary.uris == dataset_uris(minio, "instruction", sid)
    assert summary.uris["train"] == f"s3://{minio.datasets_bucket}/instruction/{sid}/train.parquet"

    ds = _load_dataset(download_dataset(minio, "instruction", sid, tmp_path / "download"))
    assert {s: ds[s].num_rows for s in ds} == summary.counts
    row = ds["train"][0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert "Ada" in row["messages"][0]["content"]
    assert row["generator"] == "offline" and row["raw_snapshot_id"] == RAW_SNAPSHOT
    train_docs = set(ds["train"]["document_id"])
    test_docs = set(ds["test"]["document_id"])
    assert train_docs and test_docs and not train_docs & test_docs
    used_chunks = {c for s in ds for ids in ds[s]["chunk_ids"] for c in ids}
    assert used_chunks <= set(chunk_ids)

    lineage = read_dataset_lineage(minio, "instruction", sid)
    assert lineage.source_urls == sorted(DOCUMENTS)
    assert lineage.chunk_ids == sorted(used_chunks)
    assert {chunk_ids[c] for c in lineage.chunk_ids} == set(DOCUMENTS)
    assert lineage.raw_snapshot_ids == [RAW_SNAPSHOT]
    assert lineage.collection == unique_name

    bucket = minio.datasets_bucket
    dedup = [
        json.loads(line)
        for line in object_store.get_bytes(bucket, f"quarantine/instruction_dedup/{sid}.jsonl")
        .decode()
        .splitlines()
    ]
    assert len(dedup) == 1 and dedup[0]["reasons"][0].startswith("exact duplicate of")
    kept = dedup[0]["record"]["kept_example_id"]
    assert kept in {e for s in ds for e in ds[s]["example_id"]}
    invalid = object_store.get_bytes(bucket, f"quarantine/instruction_examples/{sid}.jsonl")
    assert b"min_turn_chars" in invalid and b"bridges" in invalid
    assert (tmp_path / "instruction" / "instruction_examples_validation.html").exists()

    again = build_instruction_dataset(
        "Ada",
        minio=minio,
        weaviate=weaviate,
        datasets=datasets,
        base_model=base_model,
        output_dir=tmp_path / "again",
    )
    assert again.snapshot_id == sid and again.reused

    preference = build_preference_dataset(
        sid, minio=minio, datasets=datasets, base_model=base_model, output_dir=tmp_path / "pref"
    )
    assert preference.counts == summary.counts
    pairs = _load_dataset(download_dataset(minio, "preference", preference.snapshot_id, tmp_path))
    pair = pairs["train"][0]
    assert [m["role"] for m in pair["prompt"]] == ["system", "user"]
    assert (
        [m["role"] for m in pair["chosen"]]
        == ["assistant"]
        == [m["role"] for m in pair["rejected"]]
    )
    instruction_rows = {r["example_id"]: r for r in ds["train"]}
    answers = {r["messages"][-1]["content"] for r in instruction_rows.values()}
    assert pair["chosen"][0]["content"] in answers
    assert pair["rejected"][0]["content"] not in answers
    assert set(pairs["test"]["document_id"]) == test_docs  # splits are inherited
    pref_lineage = read_dataset_lineage(minio, "preference", preference.snapshot_id)
    assert pref_lineage.source_urls == lineage.source_urls

    # new writing by the author: a new snapshot whose parent is the previous one
    _load(
        vector_store,
        unique_name,
        {
            "https://ada.example.org/snow": [
                "Snow makes the town quiet in a way no law could; even the dogs lower their voices "
                "and the church bell sounds like it is wrapped in wool."
            ]
        },
    )
    grown = build_instruction_dataset(
        "Ada",
        minio=minio,
        weaviate=weaviate,
        datasets=datasets,
        base_model=base_model,
        output_dir=tmp_path / "grown",
    )
    assert grown.snapshot_id != sid
    manifest = json.loads(
        object_store.get_bytes(bucket, f"instruction/{grown.snapshot_id}/manifest.json")
    )
    assert manifest["parent"] == sid
    assert "https://ada.example.org/snow" in manifest["source_urls"]

    # a modified split file is refused on download
    object_store.put_bytes(bucket, f"instruction/{sid}/test.parquet", b"not the data")
    with pytest.raises(StorageError, match="does not match the hash"):
        download_dataset(minio, "instruction", sid, tmp_path / "tampered")


def test_llm_generator_through_the_step_quarantines_what_it_could_not_parse(
    stack_settings: TwinSettings,
    object_store: ObjectStore,
    vector_store: VectorStore,
    unique_name: str,
    base_model: Path,
    tmp_path: Path,
):
    """The endpoint is the scripted stand-in for a hosted LLM API (no such model runs here)."""
    texts = {
        "https://ada.example.org/rivers": [DOCUMENTS["https://ada.example.org/rivers"][0]],
        "https://ada.example.org/bread": [REPOSTED],
        "https://ada.example.org/bridges": [DOCUMENTS["https://ada.example.org/bridges"][0]],
        "https://ada.example.org/odd": [
            "MALFORMED " + DOCUMENTS["https://ada.example.org/notebook"][0]
        ],
    }
    _load(vector_store, unique_name, texts)
    weaviate = stack_settings.weaviate.model_copy(update={"collection": unique_name})
    with scripted_openai_server() as (base_url, script):
        script.retry_after_s = 0
        summary = build_instruction_dataset(
            "Ada",
            minio=stack_settings.minio,
            weaviate=weaviate,
            datasets=DatasetSettings(
                llm=OpenAIEndpointSettings(base_url=base_url, model="scripted", max_backoff_s=2),
                llm_batch_size=1,
            ),
            base_model=base_model,
            output_dir=tmp_path,
        )
    assert summary.generator == "llm:scripted"
    assert summary.counts["train"] + summary.counts["test"] == 3
    assert summary.quarantined == {"instruction_generation": 1}
    assert summary.usage.requests == 4 and summary.usage.attempts == 6
    assert summary.usage.prompt_tokens == script.prompt_tokens
    assert summary.usage.completion_tokens == script.completion_tokens
    assert summary.metrics["llm_attempts"] == 6.0
    failure = json.loads(
        object_store.get_bytes(
            stack_settings.minio.datasets_bucket,
            f"quarantine/instruction_generation/{summary.snapshot_id}.jsonl",
        )
    )
    assert failure["record"]["source_url"] == "https://ada.example.org/odd"
    assert failure["record"]["raw_reply"].startswith("Sure!")
    assert "not the requested JSON" in failure["reasons"][0]


def test_missing_collection_or_author_is_explained(
    stack_settings: TwinSettings, vector_store: VectorStore, unique_name: str
):
    weaviate = stack_settings.weaviate.model_copy(update={"collection": unique_name})
    with pytest.raises(StorageError, match="run the feature pipeline first"):
        read_author_chunks(weaviate, "Ada")
    _load(vector_store, unique_name, {"https://ada.example.org/one": ["Some words by Ada."]})
    assert [c.source_url for c in read_author_chunks(weaviate, "Ada")] == [
        "https://ada.example.org/one"
    ]
    with pytest.raises(ValueError, match="no chunks by author 'Nobody'"):
        read_author_chunks(weaviate, "Nobody")
